"""`Server-Timing: peer;dur=..., provider;dur=...`: the request's own time
in Django, with the time spent waiting on the provider (every `requests`
call: token, keys, userinfo) taken out, as doorman reports its own."""

import threading
import time

import requests

_waiting = threading.local()
_send = requests.Session.send


def _timed_send(self, *args, **kwargs):
    started = time.perf_counter()
    try:
        return _send(self, *args, **kwargs)
    finally:
        _waiting.seconds = getattr(_waiting, "seconds", 0.0) + time.perf_counter() - started


requests.Session.send = _timed_send


class ServerTiming:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        _waiting.seconds = 0.0
        started = time.perf_counter()
        response = self.get_response(request)
        total = time.perf_counter() - started
        provider = _waiting.seconds
        response["Server-Timing"] = f"peer;dur={(total - provider) * 1000:.3f}, provider;dur={provider * 1000:.3f}"
        return response
