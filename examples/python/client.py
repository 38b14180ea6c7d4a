#!/usr/bin/env python3
"""Call doorman's API with a bearer token from /api-token-tap.

    DOORMAN_TOKEN=dmn_... python3 client.py http://127.0.0.1:8000
    python3 client.py http://127.0.0.1:8000 dmn_...     # visible in `ps`: prefer the variable

Prints the username the token belongs to (GET /me). Exits non-zero, with
doorman's error message, when the token is refused.
"""
import os
import sys

import requests


class Doorman:
    """A minimal SDK: one session carrying `Authorization: Bearer <token>`."""

    def __init__(self, url, token, timeout=10):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path):
        response = self.session.get(self.url + path, timeout=self.timeout)
        if not response.ok:
            try:
                error = response.json()
                detail = f"{error['error']}: {error['message']}"
            except (ValueError, KeyError):
                detail = response.text
            raise SystemExit(f"GET {path}: {response.status_code} {detail}")
        return response.json()

    def me(self):
        return self.get("/me")


def main(argv):
    if len(argv) not in (2, 3):
        raise SystemExit(f"usage: {argv[0]} URL [TOKEN]   (or the token in DOORMAN_TOKEN)")
    token = argv[2] if len(argv) == 3 else os.environ.get("DOORMAN_TOKEN")
    if not token:
        raise SystemExit("no token: give it as the second argument or in DOORMAN_TOKEN")
    me = Doorman(argv[1], token).me()
    print(me["username"])


if __name__ == "__main__":
    main(sys.argv)
