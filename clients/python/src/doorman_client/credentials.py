"""The per-user credentials file: one API token per server URL, readable by
its owner only (mode 0600, in a 0700 directory), written atomically."""

import json
import os
import tempfile
import time
from pathlib import Path


def default_path():
    """`$DOORMAN_CREDENTIALS`, else `$XDG_CONFIG_HOME/doorman/credentials.json`
    (`~/.config/doorman/credentials.json`)."""
    explicit = os.environ.get("DOORMAN_CREDENTIALS")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "doorman" / "credentials.json"


def server_key(url):
    """The key of a server: its URL without a trailing slash."""
    return url.rstrip("/")


class CredentialStore:
    """Tokens by server URL in one JSON file:
    `{"<url>": {"token", "expires_at", "scope", "client_id"}}`."""

    def __init__(self, path=None):
        self.path = Path(path) if path is not None else default_path()

    def _read(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A damaged file is ignored (and replaced at the next save).
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, url, now=None):
        """The live entry for `url`, or None (missing or expired)."""
        entry = self._read().get(server_key(url))
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            return None
        now = time.time() if now is None else now
        expires_at = entry.get("expires_at")
        if not isinstance(expires_at, (int, float)) or expires_at <= now + 60:
            return None
        return entry

    def save(self, url, token, expires_at, scope, client_id):
        data = self._read()
        data[server_key(url)] = {"token": token, "expires_at": expires_at, "scope": scope, "client_id": client_id}
        self._write(data)

    def forget(self, url):
        data = self._read()
        if data.pop(server_key(url), None) is not None:
            self._write(data)

    def _write(self, data):
        directory = self.path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".credentials-", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
