"""Property-based fuzzing of every route in /openapi.json (schemathesis) against a live server:
no request may be answered with a 5xx, and the server logs no unexpected exception."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.support.server import LiveServer

MAX_EXAMPLES = os.environ.get("ET_FUZZ_EXAMPLES", "8")


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
        st = Path(sys.executable).with_name("st")
        command = [
            str(st), "run", server.url + "/openapi.json",
            "--auth", "fuzzer:fuzz-pass-1",
            "--checks", "not_a_server_error",
            "--max-examples", MAX_EXAMPLES,
            "--request-timeout", "30",
            "--no-color",
        ]  # fmt: skip
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=240, cwd=tmp_path
        )
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-6000:]
        assert " passed" in out and "failed" not in out.split("Test cases:")[-1], out[-3000:]
        assert requests.get(server.url + "/health").status_code == 200
        log = server.log()
        assert "Traceback" not in log and "unexpected error" not in log, log[-4000:]
