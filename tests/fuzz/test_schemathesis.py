"""Property-based fuzzing of every route in /openapi.json (schemathesis) against a live server:
no request may be answered with a 5xx, and the server logs no unexpected exception."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.server import LiveServer

MAX_EXAMPLES = os.environ.get("ET_FUZZ_EXAMPLES", "8")


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
BIG_BODY = b'{"name": "' + b"x" * (3 * 1024 * 1024) + b'"}'  # over the 1 MiB JSON limit


def hostile_bodies(base: str, auth: tuple[str, str]) -> None:
    """Every POST/PUT route of /openapi.json with JSON nested 100,000 deep and with a body over
    the JSON limit, with and without a login: a 4xx JSON error each time, never a 5xx."""
    spec = requests.get(base + "/openapi.json", timeout=30).json()
    for template, item in spec["paths"].items():
        path = re.sub(r"\{[^}]+\}", "x", template)
        for method in ("post", "put"):
            if method not in item:
                continue
            for body in (DEEP_JSON, BIG_BODY):
                for who in (auth, None):
                    r = requests.request(
                        method, base + path, data=body, auth=who, timeout=60,
                        headers={"Content-Type": "application/json"},
                    )  # fmt: skip
                    assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text)
                    assert r.headers["Content-Type"].startswith("application/json"), r.headers


def test_no_server_errors(tmp_path: Path) -> None:
    with LiveServer(tmp_path / "serve", workers=0) as server:
        r = requests.post(
            server.url + "/users", json={"username": "fuzzer", "password": "fuzz-pass-1"}
        )
        assert r.status_code == 201, r.text
        # Not valid Unicode / not JSON numbers: refused, never stored (a stored lone surrogate
        # made every later `st run` against this server end in schemathesis runtime errors).
        for raw in (b'{"name": "\\udc00"}', b'{"name": "a", "expires-in": NaN}'):
            r = requests.post(
                server.url + "/tokens", data=raw, auth=("fuzzer", "fuzz-pass-1"),
                headers={"Content-Type": "application/json"},
            )  # fmt: skip
            assert r.status_code == 400, (raw, r.status_code, r.text)
        hostile_bodies(server.url, ("fuzzer", "fuzz-pass-1"))
        st = Path(sys.executable).with_name("st")
        command = [
            str(st), "run", server.url + "/openapi.json",
            "--auth", "fuzzer:fuzz-pass-1",
            "--checks", "not_a_server_error",
            "--max-examples", MAX_EXAMPLES,
            "--request-timeout", "30",
            "--no-color",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-6000:]
        assert " passed" in out and "failed" not in out.split("Test cases:")[-1], out[-3000:]
        assert requests.get(server.url + "/health").status_code == 200
        log = server.log()
        assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]
