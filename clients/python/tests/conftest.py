"""Fixtures: a live doorman (started by tests/api/python_client.rs, which
passes its address and a user in the environment) and a browser session of
that user that approves device codes."""

import os
import re

import pytest
import requests


def _required(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(
            f"{name} is not set: these tests run against a live doorman; run them through "
            "`cargo test --test api python_client` (scripts/test.sh does)",
            pytrace=False,
        )
    return value


@pytest.fixture(scope="session")
def server():
    return _required("DOORMAN_TEST_URL").rstrip("/")


@pytest.fixture(scope="session")
def user():
    return _required("DOORMAN_TEST_USER"), _required("DOORMAN_TEST_PASSWORD")


class Browser:
    """A signed-in browser session that approves or denies codes on /device."""

    def __init__(self, server, username, password):
        self.server = server
        self.session = requests.Session()
        response = self.session.post(f"{server}/me/login", json={"username": username, "password": password}, timeout=10)
        assert response.status_code == 200, response.text

    def decide(self, user_code, action="approve"):
        page = self.session.get(f"{self.server}/device", params={"user_code": user_code}, timeout=10)
        assert page.status_code == 200, page.text
        assert re.search(r'id="client"', page.text)
        csrf = self.session.cookies.get("csrftoken")
        form = {"user_code": user_code, "action": action, "csrf_token": csrf}
        done = self.session.post(f"{self.server}/device", data=form, timeout=10)
        assert done.status_code == 200, done.text
        return done.text

    def tap(self):
        csrf = self.session.cookies.get("csrftoken")
        response = self.session.get(f"{self.server}/api-token-tap", headers={"X-CSRFToken": csrf}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def browser(server, user):
    return Browser(server, *user)
