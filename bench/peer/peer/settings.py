"""The peer: a Django back end signing people in the way Substra's does.

mozilla-django-oidc runs the authorization code flow (state, nonce, PKCE,
the ID token's RS256 signature checked against the provider's keys, then
userinfo); users are kept by the provider's (issuer, subject) with a
`valid_until` and the refresh token; the callback opens a Django session
and sets simplejwt access and refresh cookies. SQLite in WAL mode with
synchronous=NORMAL, as doorman runs it, so both pay the same for a commit.

Configured from the environment: PEER_ISSUER, PEER_CLIENT_ID,
PEER_CLIENT_SECRET, PEER_DB (the SQLite file).
"""

import json
import os
import urllib.request
from datetime import timedelta

ISSUER = os.environ.get("PEER_ISSUER")
DISCOVERY = {}
if ISSUER:
    with urllib.request.urlopen(f"{ISSUER}/.well-known/openid-configuration", timeout=10) as response:
        DISCOVERY = json.load(response)

SECRET_KEY = os.environ.get("PEER_SECRET_KEY", "peer-bench-secret-key-0123456789abcdef-0123456789")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "peer.urls"
WSGI_APPLICATION = "peer.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "mozilla_django_oidc",
    "peer",
]

MIDDLEWARE = [
    "peer.timing.ServerTiming",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("PEER_DB", "peer.db"),
        "OPTIONS": {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;",
            "transaction_mode": "IMMEDIATE",
        },
    }
}

AUTHENTICATION_BACKENDS = ["peer.auth.SubjectBackend"]

OIDC_RP_CLIENT_ID = os.environ.get("PEER_CLIENT_ID", "peer")
OIDC_RP_CLIENT_SECRET = os.environ.get("PEER_CLIENT_SECRET", "")
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_RP_SCOPES = "openid email profile offline_access"
OIDC_USE_PKCE = True
OIDC_TOKEN_USE_BASIC_AUTH = True
OIDC_AUTH_REQUEST_EXTRA_PARAMS = {"prompt": "consent"}
OIDC_OP_AUTHORIZATION_ENDPOINT = DISCOVERY.get("authorization_endpoint", "")
OIDC_OP_TOKEN_ENDPOINT = DISCOVERY.get("token_endpoint", "")
OIDC_OP_USER_ENDPOINT = DISCOVERY.get("userinfo_endpoint", "")
OIDC_OP_JWKS_ENDPOINT = DISCOVERY.get("jwks_uri", "")
LOGIN_REDIRECT_URL = "/"
LOGIN_REDIRECT_URL_FAILURE = "/login-failed"

# How long a signed-in external user may act before the provider is asked again.
OIDC_VALIDITY = timedelta(hours=24)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework_simplejwt.authentication.JWTAuthentication"],
}

LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
