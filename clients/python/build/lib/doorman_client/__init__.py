"""doorman's Python client: sign in from a terminal with the OAuth device
flow, call the API with a bearer token, trade it for service JWTs."""

from .client import Client, DoormanError
from .credentials import CredentialStore

__all__ = ["Client", "CredentialStore", "DoormanError"]
__version__ = "0.1.0"
