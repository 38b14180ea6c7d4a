"""doorman_client against a live doorman: the device flow with its answers,
the credentials cache, API calls, service tokens, errors and retries."""

import io
import json
import os
import re
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from doorman_client import Client, CredentialStore, DoormanError


class Approver:
    """A `sleep` for the client that approves (or denies) the shown code at
    the n-th wait instead of sleeping, and records every wait."""

    def __init__(self, browser, out, at=1, action="approve"):
        self.browser, self.out, self.at, self.action = browser, out, at, action
        self.waits = []

    def __call__(self, seconds):
        self.waits.append(seconds)
        if len(self.waits) == self.at:
            code = re.search(r"code ([B-Z]{4}-[B-Z]{4})", self.out.getvalue()).group(1)
            self.browser.decide(code, self.action)


def new_client(server, tmp_path, browser, **kwargs):
    out = io.StringIO()
    approver = Approver(browser, out, **{k: kwargs.pop(k) for k in ("at", "action") if k in kwargs})
    store = CredentialStore(tmp_path / "credentials.json")
    client = Client(server, credentials=store, open_browser=False, sleep=approver, out=out, **kwargs)
    return client, approver, out


def test_device_flow_signs_in_and_caches_the_token(server, user, browser, tmp_path):
    client, approver, out = new_client(server, tmp_path, browser)
    token = client.login()
    assert token.startswith("dmn_")
    assert approver.waits == [5]
    assert f"{server}/device?user_code=" in out.getvalue()
    assert client.me()["username"] == user[0]
    listed = client.get("/api-tokens")
    assert [t["name"] for t in listed] == ["doorman-python"]

    path = tmp_path / "credentials.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert list(saved) == [server]
    assert saved[server]["token"] == token

    # A later run reuses it: no new flow (no wait, no code).
    again, waits, _ = new_client(server, tmp_path, browser)
    assert again.login() == token
    assert waits.waits == []

    # Refused (revoked): a new flow.
    client.delete(f"/api-tokens/{listed[0]['id']}")
    third, approver3, _ = new_client(server, tmp_path, browser)
    assert third.login() != token
    assert approver3.waits == [5]

    # Expired in the file: a new flow too.
    saved = json.loads(path.read_text())
    saved[server]["expires_at"] = time.time() - 10
    path.write_text(json.dumps(saved))
    fourth, approver4, _ = new_client(server, tmp_path, browser)
    fourth.login()
    assert approver4.waits == [5]


def test_slow_down_grows_the_interval(server, browser, tmp_path):
    # No real waiting: the second poll comes too early and is told to slow down.
    client, approver, _ = new_client(server, tmp_path, browser, at=3)
    client.login(scopes=["tokens"])
    assert approver.waits == [5, 5, 10]
    assert client.get("/api-tokens")[0]["scopes"] == ["tokens"]


def test_denied_raises_access_denied(server, browser, tmp_path):
    client, _, _ = new_client(server, tmp_path, browser, action="deny")
    with pytest.raises(DoormanError) as caught:
        client.login()
    assert (caught.value.status, caught.value.error) == (400, "access_denied")
    assert not (tmp_path / "credentials.json").exists()


def test_errors_carry_status_code_and_message(server, browser, tmp_path):
    client = Client(server, token="dmn_" + "x" * 43, credentials=False)
    with pytest.raises(DoormanError) as caught:
        client.me()
    assert (caught.value.status, caught.value.error) == (401, "invalid_token")
    assert caught.value.message
    with pytest.raises(DoormanError) as caught:
        Client(server, credentials=False, client_id="x" * 65, sleep=lambda s: None).login()
    assert caught.value.error == "invalid_request"


def test_service_token_is_cached_until_near_expiry(server, browser, tmp_path):
    client = Client(server, token=browser.tap()["token"], credentials=False)
    first = client.service_token()
    assert first.count(".") == 2
    assert client.service_token() == first
    other = client.service_token(audience="queue", scope="tokens")
    assert other != first
    assert client.service_token(audience="queue", scope=["tokens"]) == other
    # Near expiry: fetched again.
    key = (None, None)
    client._service_tokens[key] = (first, time.time() + 10)
    assert client.service_token() != first


class Flaky(BaseHTTPRequestHandler):
    """Answers 503 with Retry-After `failures` times, then 200."""

    failures = 0
    seen = 0

    def do_GET(self):
        type(self).seen += 1
        if type(self).seen <= type(self).failures:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            body = b'{"error": "database_unavailable", "message": "try again"}'
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            body = b'{"username": "flaky"}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("failures,ok", [(2, True), (10, False)])
def test_503_with_retry_after_is_retried_a_bounded_number_of_times(failures, ok):
    handler = type("H", (Flaky,), {"failures": failures, "seen": 0})
    httpd = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        waits = []
        client = Client(f"http://127.0.0.1:{httpd.server_port}", token="t", credentials=False, sleep=waits.append)
        if ok:
            assert client.me() == {"username": "flaky"}
            assert waits == [0.0, 0.0]
        else:
            with pytest.raises(DoormanError) as caught:
                client.me()
            assert (caught.value.status, caught.value.error) == (503, "database_unavailable")
            assert handler.seen == 4  # one try and three retries
    finally:
        httpd.shutdown()


def test_doorman_login_signs_in_and_prints_who_you_are(server, user, browser, tmp_path):
    env = dict(os.environ, DOORMAN_CREDENTIALS=str(tmp_path / "cli.json"), DOORMAN_NO_BROWSER="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "doorman_client", server],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    code = None
    for line in proc.stderr:
        found = re.search(r"code ([B-Z]{4}-[B-Z]{4})", line)
        if found:
            code = found.group(1)
            break
    assert code, "doorman-login showed no code"
    browser.decide(code)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert stdout.strip() == user[0]
    # The next run answers at once from the cache.
    again = subprocess.run([sys.executable, "-m", "doorman_client", server], env=env, capture_output=True, text=True, timeout=30)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == user[0]
    assert "open this link" not in again.stderr
