#!/usr/bin/env python3
"""Fuzzes a live doorman against its own /openapi.json with schemathesis.

Starts the doorman binary on a fresh SQLite database, creates an admin and
a plain user with `doorman create-user`, signs both in, and runs
schemathesis as four callers: anonymous, the signed-in user and the admin
(their cookies with the X-CSRFToken header), and the admin's bearer token.
Checks: no 5xx, and every answer's status, content type and body conform to
the description. Prints the numbers of each run and in all; exits non-zero
on any failure, on a missing schemathesis, and when no test ran.

Usage: python3 tests/schemathesis/run.py [--binary PATH] [--max-examples N]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
PASSWORD = "correct horse battery"


def fail(message):
    print(f"schemathesis run: FAILED: {message}", flush=True)
    sys.exit(1)


def schemathesis_command():
    """The schemathesis CLI; its absence is a failure, never a skip."""
    try:
        import schemathesis  # noqa: F401
    except ImportError:
        fail("schemathesis is not installed (scripts/test.sh installs it: pip install -r tests/schemathesis/requirements.txt)")
    return [sys.executable, "-m", "schemathesis.cli"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_binary():
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "debug", "doorman")


class Doorman:
    def __init__(self, binary, workdir):
        self.binary = binary
        self.workdir = workdir
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.config = os.path.join(workdir, "doorman.toml")
        with open(self.config, "w") as f:
            f.write(
                f'[server]\nbind = "127.0.0.1:{port}"\npublic_url = "{self.url}"\n'
                f'[database]\nurl = "sqlite://{workdir}/doorman.db"\n'
                '[auth]\nsecret_key = "schemathesis-0123456789abcdef0123456789"\n'
            )
        self.process = None

    def run(self, *args, stdin=None):
        out = subprocess.run(
            [self.binary, "--config", self.config, *args],
            input=stdin, capture_output=True, text=True, cwd=self.workdir, timeout=60,
        )
        if out.returncode != 0:
            fail(f"doorman {' '.join(args)} exited {out.returncode}: {out.stderr}")
        return out.stdout

    def start(self):
        log = open(os.path.join(self.workdir, "doorman.log"), "w")
        self.process = subprocess.Popen(
            [self.binary, "--config", self.config], cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                fail(f"doorman exited {self.process.returncode} at start; log:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        fail("doorman did not answer /healthz within 30 s")

    def log(self):
        with open(os.path.join(self.workdir, "doorman.log")) as f:
            return f.read()[-20000:]

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def sign_in(self, username):
        """The cookies of a fresh browser session: (cookie header, csrf token)."""
        request = urllib.request.Request(
            self.url + "/me/login",
            data=json.dumps({"username": username, "password": PASSWORD}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            cookies = {}
            for value in r.headers.get_all("Set-Cookie") or []:
                name, _, rest = value.partition("=")
                cookies[name] = rest.split(";", 1)[0]
        for name in ("doorman_access", "doorman_session", "csrftoken"):
            if not cookies.get(name):
                fail(f"signing in {username} set no {name} cookie")
        return "; ".join(f"{k}={v}" for k, v in cookies.items()), cookies["csrftoken"]

    def get(self, path, headers):
        request = urllib.request.Request(self.url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def operations(self):
        status, body = self.get("/openapi.json", {})
        if status != 200:
            fail(f"GET /openapi.json answered {status}")
        methods = {"get", "put", "post", "delete", "patch"}
        return sorted(f"{m.upper()} {p}" for p, item in json.loads(body)["paths"].items() for m in item if m in methods)

    def api_token(self, cookie_header):
        request = urllib.request.Request(self.url + "/api-token-tap", headers={"Cookie": cookie_header})
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.load(r)["token"]


def run_schemathesis(command, doorman, caller, headers, exclude, args, report_dir):
    report = os.path.join(report_dir, f"{caller}.json")
    cmd = [
        *command, "run", doorman.url + "/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(args.max_examples),
        "--seed", str(args.seed),
        "--phases", "examples,coverage,fuzzing",
        "--max-redirects", "0",
        "--workers", "2",
        "--request-timeout", "10",
        "--suppress-health-check", "all",
        "--report", "json", "--report-json-path", report,
        "--no-color",
    ]
    for name, value in headers.items():
        cmd += ["--header", f"{name}: {value}"]
    for name in exclude:
        cmd += ["--exclude-name", name]
    print(f"--- schemathesis as {caller}", flush=True)
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=report_dir, timeout=600)
    elapsed = time.monotonic() - started
    if out.returncode != 0:
        print(out.stdout[-30000:], out.stderr[-5000:], sep="\n")
    if not os.path.exists(report):
        fail(f"{caller}: schemathesis wrote no report (exit {out.returncode}): {out.stderr[-3000:]}")
    with open(report) as f:
        data = json.load(f)
    numbers = summarize(data)
    numbers["exit"] = out.returncode
    print(
        f"schemathesis as {caller}: {numbers['operations']} operations, {numbers['examples']} examples, "
        f"{numbers['failures']} failures, {numbers['errors']} errors ({elapsed:.0f} s)",
        flush=True,
    )
    return numbers


def summarize(data):
    """Operations tested, examples sent and failures found, from the JSON report."""
    for group in data.get("failures", []):
        print(f"  failure: {group['title']} x{group['count']} in {', '.join(group.get('operations') or [])}")
    for group in data.get("errors", []):
        print(f"  error: {group['title']} x{group['count']}")
    cases = data["test_cases"]
    return {
        "operations": data["operations"]["tested"],
        "examples": cases["generated"],
        "failures": cases["with_failures"],
        "errors": data["operations"]["errored"] + cases["errored"] + len(data.get("errors", [])),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=default_binary())
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SCHEMATHESIS_SEED", "13")))
    args = parser.parse_args()
    command = schemathesis_command()
    if not os.access(args.binary, os.X_OK):
        fail(f"no doorman binary at {args.binary} (cargo build first)")

    workdir = tempfile.mkdtemp(prefix="doorman-schemathesis-")
    doorman = Doorman(os.path.abspath(args.binary), workdir)
    try:
        doorman.run("create-user", "admin", "--admin", stdin=PASSWORD + "\n")
        doorman.run("create-user", "user", stdin=PASSWORD + "\n")
        doorman.start()
        user_cookies, user_csrf = doorman.sign_in("user")
        admin_cookies, admin_csrf = doorman.sign_in("admin")
        admin_bearer = doorman.api_token(admin_cookies)
        # Signing out would end the session the rest of the run uses.
        keep_session = ["POST /me/logout"]
        callers = [
            ("anonymous", {}, []),
            ("user", {"Cookie": user_cookies, "X-CSRFToken": user_csrf}, keep_session),
            ("admin", {"Cookie": admin_cookies, "X-CSRFToken": admin_csrf}, keep_session),
            ("admin-bearer", {"Authorization": f"Bearer {admin_bearer}"}, []),
        ]
        described = doorman.operations()
        print(f"/openapi.json describes {len(described)} operations", flush=True)
        totals = {"operations": 0, "examples": 0, "failures": 0, "errors": 0}
        exits = []
        for caller, headers, exclude in callers:
            numbers = run_schemathesis(command, doorman, caller, headers, exclude, args, workdir)
            # schemathesis leaves out the operation that serves the description itself.
            expected = len([op for op in described if op != "GET /openapi.json" and op not in exclude])
            if numbers["operations"] != expected:
                numbers["errors"] += 1
                print(f"  error: {numbers['operations']} operations tested, {expected} expected")
            if headers:
                status, _ = doorman.get("/me", headers)
                if status != 200:
                    numbers["errors"] += 1
                    print(f"  error: the {caller} credentials no longer work after the run (GET /me: {status})")
            for key in totals:
                totals[key] += numbers[key]
            exits.append((caller, numbers))
        print(
            f"schemathesis in all: {totals['operations']} operations, {totals['examples']} examples, "
            f"{totals['failures']} failures, {totals['errors']} errors",
            flush=True,
        )
        bad = [c for c, n in exits if n["exit"] != 0 or n["failures"] or n["errors"] or not n["examples"]]
        if bad:
            print("doorman log (tail):\n" + doorman.log()[-5000:])
            fail(f"runs with failures, errors or no test: {', '.join(bad)}")
        if totals["examples"] == 0 or totals["operations"] == 0:
            fail("no test ran")
        print(f"schemathesis: {totals['examples']} passed, 0 failed", flush=True)
    finally:
        doorman.stop()
        if os.environ.get("KEEP_SCHEMATHESIS_DIR"):
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
