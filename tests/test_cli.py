"""The command line: every flag documented, ET_* variables honoured, bad URLs rejected cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import fields
from pathlib import Path

import pytest
import requests

from elasticthought.config import Config
from tests.support.server import LiveServer


def et(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout=60):
    """Run `python -m elasticthought ARGS`; return the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "elasticthought", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_help_lists_every_flag_and_its_variable(command: str) -> None:
    result = et(command, "--help")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for f in fields(Config):
        assert "--" + f.name.replace("_", "-") in text
        assert "ET_" + f.name.upper() in text
    for flag in ["--host", "--port", "--data-dir", "--store", "--blobs", "--workers", "--engine"]:
        assert flag in text


def test_top_level_help_lists_commands() -> None:
    result = et("--help")
    assert result.returncode == 0
    assert "serve" in result.stdout and "worker" in result.stdout
    assert et().returncode != 0  # no command: usage, non-zero


def test_env_variables_become_defaults() -> None:
    result = et("serve", "--help", env={"ET_PORT": "9137", "ET_ENGINE": "caffe"})
    text = " ".join(result.stdout.split())
    assert "default: 9137" in text
    assert "default: caffe" in text


def test_env_configures_live_server_and_flags_win(tmp_path: Path) -> None:
    blobs_dir = tmp_path / "env-blobs"
    store_file = tmp_path / "env-store" / "et.db"
    store_file.parent.mkdir()
    env = {
        "ET_BLOBS": f"file://{blobs_dir}",
        "ET_STORE": f"sqlite://{store_file}",
        "ET_PORT": str(closed_port()),  # the helper's --port flag must win over this
    }
    with LiveServer(tmp_path / "srv", env=env) as srv:
        body = requests.get(srv.url + "/health", timeout=10).json()
        assert srv.port != int(env["ET_PORT"])
    assert body["blobs"]["url"] == env["ET_BLOBS"]
    assert body["store"]["url"] == env["ET_STORE"]
    assert blobs_dir.is_dir()
    assert store_file.exists()


@pytest.mark.parametrize(
    "flag,url",
    [
        ("--store", "bogus://nowhere/db"),
        ("--store", "sqlite://somehost/x.db"),
        ("--store", "http://"),
        ("--store", "http://127.0.0.1:{closed}/etdb"),
        ("--blobs", "s3://bucket/prefix"),
        ("--blobs", "file://otherhost/dir"),
    ],
)
@pytest.mark.parametrize("command", ["serve", "worker"])
def test_bad_url_is_one_clear_line(tmp_path: Path, command: str, flag: str, url: str) -> None:
    url = url.format(closed=closed_port())
    result = et(
        command,
        "--data-dir",
        str(tmp_path / "d"),
        "--workers",
        "1",
        flag,
        url,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert url in lines[0]
    assert lines[0].startswith("elasticthought: error:")


def test_credentials_are_not_echoed(tmp_path: Path) -> None:
    url = f"http://admin:s3cret@127.0.0.1:{closed_port()}/etdb"
    result = et("serve", "--data-dir", str(tmp_path / "d"), "--store", url, cwd=tmp_path)
    assert result.returncode == 2
    assert "s3cret" not in result.stderr
    assert "127.0.0.1" in result.stderr


def test_bad_env_value_is_one_clear_line() -> None:
    result = et("serve", env={"ET_PORT": "eighty"})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "ET_PORT='eighty'" in result.stderr


def test_worker_command_runs_until_sigterm(tmp_path: Path) -> None:
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "elasticthought", "worker", "--workers", "1"]
            + ["--data-dir", str(tmp_path / "d")],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 60
        while "worker(s) on" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert (tmp_path / "d" / "elasticthought.db").exists()
