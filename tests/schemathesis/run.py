#!/usr/bin/env python3
"""Runs schemathesis against a live doorman, as one caller, on its own /openapi.json.

The caller's credentials come as headers (--header 'Cookie: ...', --header
'X-CSRFToken: ...', --header 'Authorization: Bearer ...'); none: anonymous.
Checks: no 5xx, and every answer's status, content type, headers and body
conform to the description; and GET /me answers as that caller (200 with
credentials, 401 without) before and after the run. The run is bounded (--max-examples per
operation, --time-limit in all) and repeatable (deterministic generation).

Prints the run's numbers on stdout, last, as one line:
    schemathesis ROLE: N operations, N examples, N failures, N errors
and, before it, every failure found. Exits 0 only when operations were
tested, examples were sent and none failed; 1 otherwise; 2 when schemathesis
is not installed (scripts/test.sh installs tests/schemathesis/requirements.txt):
never a skip.

Usage: python3 tests/schemathesis/run.py --url http://127.0.0.1:8000 --role anonymous \
           [--header 'NAME: VALUE']... [--exclude OPERATION_ID]... [--fix 'OPERATION_ID NAME=VALUE']...
           [--report-dir DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def fail(message, code=1):
    print(f"schemathesis run: FAILED: {message}", flush=True)
    sys.exit(code)


def me_status(url, headers):
    """The status of GET /me with the caller's headers: 200 signed in, 401 anonymous."""
    request = urllib.request.Request(url.rstrip("/") + "/me")
    for header in headers:
        name, _, value = header.partition(":")
        request.add_header(name.strip(), value.strip())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="doorman's base URL")
    parser.add_argument("--role", required=True, help="a name for the caller, in the output")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', sent with every request")
    parser.add_argument("--exclude", action="append", default=[], help="the operationId of an operation not to call")
    parser.add_argument(
        "--fix", action="append", default=[], metavar="'OPERATION_ID NAME=VALUE'",
        help="always send VALUE as the parameter NAME (e.g. path.username) of that operation",
    )
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25")))
    parser.add_argument(
        "--time-limit", type=int, default=int(os.environ.get("SCHEMATHESIS_TIME_LIMIT", "90")),
        help="seconds the run may take; past them it is stopped and fails",
    )
    parser.add_argument("--report-dir", default=None)
    args = parser.parse_args()

    try:
        import schemathesis  # noqa: F401
    except ImportError:
        fail(
            "schemathesis is not installed for this python3 "
            "(pip install -r tests/schemathesis/requirements.txt; scripts/test.sh does)",
            code=2,
        )

    report_dir = os.path.abspath(args.report_dir or tempfile.mkdtemp(prefix="doorman-schemathesis-"))
    os.makedirs(report_dir, exist_ok=True)
    report = os.path.join(report_dir, f"{args.role}.json")
    if os.path.exists(report):
        os.remove(report)
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", args.url.rstrip("/") + "/openapi.json",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(args.max_examples),
        # Repeatable: the same cases every run (no seed, no example database).
        "--generation-deterministic",
        # A caller with credentials is who its headers say: no generated cookie, token or
        # CSRF header on top. Without, the credentials are generated too: garbage to refuse.
        "--generation-with-security-parameters", "false" if args.header else "true",
        "--max-redirects", "0",
        # One worker: Python 3.11's parser is not safe across the threads of several.
        "--workers", "1",
        "--request-timeout", "10",
        "--suppress-health-check", "all",
        "--warnings", "off",
        "--report", "json", "--report-json-path", report,
        "--no-color",
    ]
    for header in args.header:
        command += ["--header", header]
    for operation_id in args.exclude:
        command += ["--exclude-operation-id", operation_id]
    if args.fix:
        config = os.path.join(report_dir, f"{args.role}.toml")
        with open(config, "w") as f:
            for fix in args.fix:
                operation_id, _, assignment = fix.partition(" ")
                name, _, value = assignment.partition("=")
                if not (operation_id and name and value):
                    fail(f"--fix {fix!r}: expected 'OPERATION_ID NAME=VALUE'")
                f.write(f"[[operations]]\ninclude-operation-id = {json.dumps(operation_id)}\n")
                f.write(f"parameters = {{ {json.dumps(name)} = {json.dumps(value)} }}\n\n")
        command[3:3] = ["--config-file", config]

    # The caller is who it should be before the run and still is after it:
    # a run whose credentials died halfway would test little as that caller.
    expected = 200 if args.header else 401
    before = me_status(args.url, args.header)
    if before != expected:
        fail(f"{args.role}: GET /me answers {before} before the run, not {expected}")
    started = time.monotonic()
    try:
        # In the report directory: schemathesis keeps its cache in the working directory.
        out = subprocess.run(command, capture_output=True, text=True, timeout=args.time_limit, cwd=report_dir)
    except subprocess.TimeoutExpired:
        fail(f"{args.role}: schemathesis took longer than {args.time_limit} s")
    elapsed = time.monotonic() - started
    if not os.path.exists(report):
        print(out.stdout[-20000:], out.stderr[-5000:], sep="\n")
        fail(f"{args.role}: schemathesis wrote no report (exit {out.returncode})")
    with open(report) as f:
        data = json.load(f)
    after = me_status(args.url, args.header)
    if after != expected:
        fail(f"{args.role}: GET /me answers {after} after the run, not {expected}: an operation ended the caller's credentials")

    failed = out.returncode != 0 or data["test_cases"]["with_failures"] or data.get("failures") or data.get("errors")
    if failed:
        # Its own account of each failure, with the request to reproduce it.
        print(out.stdout[-25000:])
    for group in data.get("failures") or []:
        print(f"  failure: {json.dumps(group)[:2000]}")
    for group in data.get("errors") or []:
        print(f"  error: {json.dumps(group)[:2000]}")

    selected, total = data["operations"]["selected"], data["operations"]["total"]
    if selected != total - len(args.exclude):
        fail(f"{args.role}: {selected} of {total} operations selected, but {len(args.exclude)} excluded: {args.exclude}")
    operations = data["operations"]["tested"]
    examples = data["test_cases"]["generated"]
    failures = data["test_cases"]["with_failures"]
    errors = data["operations"]["errored"] + data["test_cases"]["errored"] + len(data.get("errors") or [])
    print(
        f"schemathesis {args.role}: {operations} operations, {examples} examples, {failures} failures, "
        f"{errors} errors ({elapsed:.0f} s)",
        flush=True,
    )
    if failed or errors or not operations or not examples:
        sys.exit(1)


if __name__ == "__main__":
    main()
