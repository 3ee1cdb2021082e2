"""The seed's launch line and inputs: `elastic-thought [--sync-gw-url URL] [--blob-store-url URL]`
runs `serve`, `cbfs://` is refused with the replacement named, `--min-password-length`, and the
dataset key `test` as an alias of `testing` (live servers; no training)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.server import LISTEN_RE, LiveServer


def et(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "elasticthought", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_seed_launch_line_runs_serve_on_the_given_store_and_blobs(tmp_path: Path) -> None:
    store = tmp_path / "seed.db"
    blobs = tmp_path / "seed-blobs"
    log = tmp_path / "serve.log"
    argv = [
        "--sync-gw-url", f"sqlite://{store}", "--blob-store-url", f"file://{blobs}",
        "--host", "127.0.0.1", "--port", "0", "--workers", "0", "--data-dir", str(tmp_path),
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "elasticthought", *argv], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        match = None
        while match is None:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            match = LISTEN_RE.search(log.read_text())
            time.sleep(0.05)
        health = requests.get(f"http://127.0.0.1:{match.group(2)}/health", timeout=30).json()
        assert health["store"]["url"] == f"sqlite://{store}"
        assert health["blobs"]["url"] == f"file://{blobs}"
        assert store.is_file() and blobs.is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_sync_gw_alias_and_help() -> None:
    shown = et("serve", "--help").stdout
    assert "--sync-gw-url" in shown and "--sync-gw " in shown and "--blob-store-url" in shown
    assert "--min-password-length" in shown
    # `--sync-gw` is the `--store` option (a refused URL names it, exit 2 before listening).
    refused = et("--sync-gw", "ftp://nowhere/db", "--port", "0")
    assert refused.returncode == 2 and "ftp://nowhere/db" in refused.stderr


def test_cbfs_blob_store_is_refused_naming_the_replacement(tmp_path: Path) -> None:
    result = et(
        "--blob-store-url", "cbfs://localhost:8484/", "--data-dir", str(tmp_path), "--port", "0"
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "cbfs://" in line and "file:///" in line and "not supported" in line


def test_min_password_length_bounds() -> None:
    for bad in ("0", "1025", "x"):
        result = et("serve", "--min-password-length", bad)
        assert result.returncode == 2 and "--min-password-length" in result.stderr
    result = et("serve", "--help", env={"ET_MIN_PASSWORD_LENGTH": "0"})
    assert result.returncode != 0 and "ET_MIN_PASSWORD_LENGTH" in result.stderr


def sign_up(base: str, name: str, password: str) -> requests.Response:
    body = {"username": name, "email": f"{name}@foo.net", "password": password}
    return requests.post(base + "/users", json=body, timeout=30)


def test_password_policy_follows_the_flag(live_server) -> None:
    default = live_server()
    refused = sign_up(default.url, "foo", "bar")
    assert refused.status_code == 400 and "8 to 1024" in refused.json()["detail"]
    seed = live_server(args=["--min-password-length", "3"])
    assert sign_up(seed.url, "foo", "ba").status_code == 400
    assert sign_up(seed.url, "foo", "bar").status_code == 201
    assert requests.get(seed.url + "/users/me", auth=("foo", "bar"), timeout=30).status_code == 200
    change = requests.post(
        seed.url + "/users/user:foo/password",
        json={"current-password": "bar", "password": "no"},
        auth=("foo", "bar"),
        timeout=30,
    )
    assert change.status_code == 400 and "3 to 1024" in change.json()["detail"]


def test_dataset_test_alias_rules(tmp_path: Path) -> None:
    with LiveServer(tmp_path) as server:
        assert sign_up(server.url, "alias", "alias-password").status_code == 201
        auth = ("alias", "alias-password")
        side = {"datafile-id": "datafile:nobody:1", "split-percentage": 0.3}
        both = requests.post(
            server.url + "/datasets",
            json={"training": side, "test": side, "testing": side},
            auth=auth,
            timeout=30,
        )
        assert both.status_code == 400 and "alias 'test'" in both.json()["detail"]
        typo = requests.post(
            server.url + "/datasets", json={"training": side, "tset": side}, auth=auth, timeout=30
        )
        assert typo.status_code == 400 and re.search(r"unknown field\(s\): tset", typo.text)
        # With the alias alone, validation goes on to the datafile (which does not exist).
        alias = requests.post(
            server.url + "/datasets", json={"training": side, "test": side}, auth=auth, timeout=30
        )
        assert alias.status_code in (404, 422) and "datafile" in alias.json()["detail"]
