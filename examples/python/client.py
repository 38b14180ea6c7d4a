#!/usr/bin/env python3
"""Call doorman's API from a script, with the doorman_client package.

    python3 client.py http://127.0.0.1:8000              # signs in (device flow) or reuses the cached token
    DOORMAN_TOKEN=dmn_... python3 client.py http://127.0.0.1:8000
    python3 client.py http://127.0.0.1:8000 dmn_...      # visible in `ps`: prefer the variable

Prints the username the token belongs to (GET /me). Exits non-zero, with
doorman's error, when the token is refused.
"""
import os
import sys

try:
    from doorman_client import Client, DoormanError
except ImportError:  # not installed: use the package from this repository
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python", "src"))
    from doorman_client import Client, DoormanError


def main(argv):
    if len(argv) not in (2, 3):
        raise SystemExit(f"usage: {argv[0]} URL [TOKEN]   (or the token in DOORMAN_TOKEN; none: sign in)")
    token = argv[2] if len(argv) == 3 else os.environ.get("DOORMAN_TOKEN")
    client = Client(argv[1], token=token)
    try:
        if not token:
            client.login()
        me = client.me()
    except DoormanError as err:
        raise SystemExit(f"GET /me: {err}")
    print(me["username"])


if __name__ == "__main__":
    main(sys.argv)
