"""`doorman-login URL`: signs in to doorman at URL (the device flow, or the
cached token) and prints who you are."""

import argparse
import sys

from .client import Client, DoormanError


def main(argv=None):
    parser = argparse.ArgumentParser(prog="doorman-login", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="doorman's address, e.g. http://127.0.0.1:8000")
    parser.add_argument("--scope", action="append", default=[], help="a scope to ask for (repeatable; default: all yours)")
    parser.add_argument("--force", action="store_true", help="sign in again even with a cached token")
    parser.add_argument("--no-browser", action="store_true", help="only print the link, do not open a browser")
    parser.add_argument("--credentials", help="credentials file (default: ~/.config/doorman/credentials.json)")
    args = parser.parse_args(argv)
    client = Client(args.url, credentials=args.credentials, open_browser=False if args.no_browser else None)
    try:
        client.login(scopes=args.scope, force=args.force)
        me = client.me()
    except DoormanError as err:
        print(f"doorman-login: {err.status} {err.error}: {err.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(me["username"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
