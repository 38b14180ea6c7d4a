"""`python -m doorman_client URL`: the same as `doorman-login URL`."""

import sys

from .cli import main

sys.exit(main())
