"""`Client`: doorman's API over `requests`, signing in with the OAuth device
authorization grant (RFC 8628) when it has no token."""

import os
import sys
import time
import webbrowser

import requests

from .credentials import CredentialStore

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: The label the token is listed under in `/api-tokens`.
DEFAULT_CLIENT_ID = "doorman-python"
#: A service token is fetched again this many seconds before it expires.
SERVICE_TOKEN_MARGIN = 30
#: Longest wait honoured from a `Retry-After` header.
MAX_RETRY_AFTER = 30


class DoormanError(Exception):
    """Any refusal or failure: the HTTP `status` (0 when the server could not
    be reached), doorman's `error` code and its `message`."""

    def __init__(self, status, error, message, response=None):
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.response = response

    @classmethod
    def from_response(cls, response):
        try:
            body = response.json()
            error, message = body["error"], body.get("message") or body.get("error_description") or ""
        except (ValueError, KeyError, TypeError):
            error, message = "http_error", (response.text or response.reason or "")[:500]
        return cls(response.status_code, error, message, response)


def _browser_available():
    if os.environ.get("DOORMAN_NO_BROWSER"):
        return False
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Client:
    """doorman at `url`, as one user.

    `token`: an API token to use (else `login()` finds or gets one).
    `credentials`: a `CredentialStore`, a path, or False for none (default:
    the per-user file). `open_browser`: True, False, or None (when one is
    available). `retries`: how many times a 503 with `Retry-After` is retried.
    `sleep` and `out` are for tests and embedding (waiting, and where the
    sign-in instructions are printed).
    """

    def __init__(
        self,
        url,
        token=None,
        *,
        client_id=DEFAULT_CLIENT_ID,
        credentials=None,
        open_browser=None,
        timeout=10,
        retries=3,
        session=None,
        sleep=time.sleep,
        out=None,
    ):
        self.url = url.rstrip("/")
        self.token = token
        self.client_id = client_id
        if credentials is False:
            self.credentials = None
        elif isinstance(credentials, CredentialStore):
            self.credentials = credentials
        else:
            self.credentials = CredentialStore(credentials)
        self.open_browser = open_browser
        self.timeout = timeout
        self.retries = retries
        self.session = session or requests.Session()
        self.sleep = sleep
        self.out = out
        self._service_tokens = {}

    # -- signing in ------------------------------------------------------

    def login(self, scopes=None, *, force=False):
        """Signs in and returns the API token: the cached one while it lives
        and is accepted (and holds `scopes`), else through the device flow.
        `scopes`: a list or a space-separated string; default every scope the
        approving user holds."""
        wanted = scopes.split() if isinstance(scopes, str) else list(scopes or [])
        if not force and self.credentials is not None:
            cached = self.credentials.get(self.url)
            if cached and set(wanted) <= set((cached.get("scope") or "").split()):
                if self._accepted(cached["token"]):
                    self.token = cached["token"]
                    return self.token
                self.credentials.forget(self.url)
        granted = self._device_flow(" ".join(wanted) or None)
        self.token = granted["access_token"]
        if self.credentials is not None:
            expires_at = time.time() + int(granted.get("expires_in", 0))
            self.credentials.save(self.url, self.token, expires_at, granted.get("scope", ""), self.client_id)
        return self.token

    def logout(self):
        """Forgets the cached token of this server (it stays valid until
        revoked: `DELETE /api-tokens/{id}`)."""
        if self.credentials is not None:
            self.credentials.forget(self.url)
        self.token = None
        self._service_tokens.clear()

    def _accepted(self, token):
        """Whether the server still takes `token` (anything but a 401)."""
        try:
            response = self._send("GET", "/me", headers={"Authorization": f"Bearer {token}"})
        except DoormanError:
            return False
        return response.status_code != 401

    def _say(self, text):
        print(text, file=self.out or sys.stderr, flush=True)

    def _device_flow(self, scope):
        form = {"client_id": self.client_id}
        if scope:
            form["scope"] = scope
        start = self._checked(self._send("POST", "/oauth/device_authorization", data=form))
        codes = start.json()
        link = codes.get("verification_uri_complete") or codes["verification_uri"]
        self._say(f"To sign in, open this link in a browser:\n\n    {link}\n\nand check that it shows the code {codes['user_code']}.")
        if self.open_browser or (self.open_browser is None and _browser_available()):
            try:
                webbrowser.open(link, new=2)
            except webbrowser.Error:
                pass
        interval = max(1, int(codes.get("interval", 5)))
        deadline = time.monotonic() + int(codes.get("expires_in", 600))
        poll = {"grant_type": DEVICE_GRANT, "device_code": codes["device_code"], "client_id": self.client_id}
        while time.monotonic() < deadline:
            self.sleep(interval)
            response = self._send("POST", "/token", data=poll)
            if response.status_code == 200:
                self._say("Signed in.")
                return response.json()
            error = DoormanError.from_response(response)
            if error.error == "authorization_pending":
                continue
            if error.error == "slow_down":
                interval += 5
                continue
            raise error
        raise DoormanError(400, "expired_token", "the code expired before it was approved; sign in again")

    # -- calls -------------------------------------------------------------

    def _send(self, method, path, headers=None, **kwargs):
        """One call, retrying a 503 that names a `Retry-After` (bounded)."""
        url = path if path.startswith(("http://", "https://")) else self.url + "/" + path.lstrip("/")
        for attempt in range(self.retries + 1):
            try:
                response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
            except requests.RequestException as err:
                raise DoormanError(0, "unreachable", f"{method} {url}: {err}") from err
            retry_after = response.headers.get("Retry-After")
            if response.status_code != 503 or retry_after is None or attempt == self.retries:
                return response
            try:
                wait = float(retry_after)
            except ValueError:
                wait = 1.0
            self.sleep(min(max(wait, 0.0), MAX_RETRY_AFTER))
        return response  # not reached: the last attempt returns above

    @staticmethod
    def _checked(response):
        if not response.ok:
            raise DoormanError.from_response(response)
        return response

    def request(self, method, path, **kwargs):
        """Calls `path` with the bearer token; the JSON answer (None for 204,
        text when not JSON). Refusals raise `DoormanError`."""
        headers = dict(kwargs.pop("headers", None) or {})
        if self.token:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        response = self._checked(self._send(method, path, headers=headers, **kwargs))
        if response.status_code == 204 or not response.content:
            return None
        if "json" in response.headers.get("Content-Type", ""):
            return response.json()
        return response.text

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def patch(self, path, **kwargs):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def me(self):
        """`GET /me`: who the token belongs to."""
        return self.get("/me")

    def service_token(self, audience=None, scope=None):
        """A service JWT from `POST /token` for `audience` (default: doorman
        itself) with `scope` (default: the token's), reused until
        `SERVICE_TOKEN_MARGIN` seconds before it expires."""
        if isinstance(scope, (list, tuple, set)):
            scope = " ".join(scope)
        key = (audience, scope)
        cached = self._service_tokens.get(key)
        if cached and cached[1] - SERVICE_TOKEN_MARGIN > time.time():
            return cached[0]
        form = {k: v for k, v in (("audience", audience), ("scope", scope)) if v}
        body = self.post("/token", data=form)
        self._service_tokens[key] = (body["access_token"], time.time() + int(body.get("expires_in", 0)))
        return body["access_token"]
