#!/usr/bin/env python3
"""Verify a service JWT from doorman's POST /token with nothing but the
published keys (GET /.well-known/jwks.json), as another service would.

    python3 verify_jwt.py http://127.0.0.1:8000 eyJ... [--audience AUD]
    python3 verify_jwt.py http://127.0.0.1:8000 [--audience AUD]   # fetch one first

Without a token, one is fetched with the doorman_client package (POST /token,
signing in with the device flow or the cached token, or DOORMAN_TOKEN).
The audience defaults to the issuer (doorman's public URL), which is what
/token puts in `aud` when none was asked for. Prints the verified claims as
JSON; exits non-zero when the token does not verify.
"""
import argparse
import json
import os
import sys

import jwt  # PyJWT, with the "crypto" extra for EdDSA


def verify(issuer, token, audience=None):
    issuer = issuer.rstrip("/")
    # Fetches the JWKS (and fetches it again for an unknown kid, as after a key rotation).
    jwks = jwt.PyJWKClient(issuer + "/.well-known/jwks.json", cache_keys=True, lifespan=300, timeout=10)
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "at+jwt":
        raise jwt.InvalidTokenError(f"not an access token (typ {header.get('typ')!r})")
    signing_key = jwks.get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["EdDSA"],
        audience=audience or issuer,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]},
        leeway=30,
    )


def fetch(url, audience):
    """A service JWT for `audience` from doorman, through doorman_client."""
    try:
        from doorman_client import Client
    except ImportError:  # not installed: use the package from this repository
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "..", "clients", "python", "src"))
        from doorman_client import Client
    client = Client(url, token=os.environ.get("DOORMAN_TOKEN"))
    if not client.token:
        client.login()
    return client.service_token(audience=audience)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="doorman's public URL (the issuer)")
    parser.add_argument("token", nargs="?", help="a JWT from POST /token (default: fetch one)")
    parser.add_argument("--audience", help="expected aud (default: the issuer)")
    args = parser.parse_args()
    if args.token is None:
        args.token = fetch(args.url, args.audience)
    try:
        claims = verify(args.url, args.token, args.audience)
    except jwt.PyJWTError as err:
        print(f"invalid token: {err}", file=sys.stderr)
        return 1
    print(json.dumps(claims, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
