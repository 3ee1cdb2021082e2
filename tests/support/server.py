"""Run a live `elasticthought serve` process for tests that talk HTTP to the real service.

Usage (context manager)::

    from tests.support.server import LiveServer

    with LiveServer(tmp_path, workers=0) as srv:          # embedded sqlite + file blobs in tmp
        requests.get(srv.url + "/health").json()
        srv.restart()                                      # same port, same data dir
        srv.kill()                                         # SIGKILL, e.g. to test recovery

Or the pytest fixture `live_server` (registered in tests/conftest.py; a factory: every server it
made is stopped after the test)::

    def test_x(live_server, pouchdb_url):
        srv = live_server(store=pouchdb_url, workers=2, args=["--lease-seconds", "5"])

Parameters:
- `tmp_path`: the server's cwd; the data dir is `tmp_path/et-data` unless `data_dir=` is given
  (`data_dir=""` passes no `--data-dir`: the server's default `./et-data` in its cwd).
- `store=` / `blobs=`: URLs (default: the embedded ones under the data dir).
- `workers=`: default 0 (API only); None passes no `--workers` (the server's default, 1).
- `args=`: extra flags; `env=`: extra environment variables (e.g. `ET_*`).
- `healthy=`: wait for /health 200 (default) or, when False, for any HTTP answer.
- `timeout=`: the bounded start wait, in seconds.
Attributes: `.url` ("http://127.0.0.1:PORT"), `.port`, `.proc` (Popen), `.data_dir`, `.log_path`
(stdout+stderr of every start, appended). Methods: `.start()`, `.stop()` (SIGTERM, then SIGKILL
after a timeout; returns the exit code), `.kill()` (SIGKILL), `.restart(kill=False)`, `.log()`.
A failed start raises `ServerStartError` with the log tail.
The first start uses a free port chosen by the server (`--port 0`); restarts reuse it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"elasticthought: serving on http://([^\s:]+):(\d+)")
START_TIMEOUT = 60.0


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; the message holds its log tail."""


class LiveServer:
    """One `elasticthought serve` subprocess on a loopback port (see the module docstring)."""

    def __init__(
        self,
        tmp_path: Path | str,
        *,
        store: str | None = None,
        blobs: str | None = None,
        workers: int | None = 0,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        data_dir: Path | str | None = None,
        healthy: bool = True,
        timeout: float = START_TIMEOUT,
    ) -> None:
        self.tmp_path = Path(tmp_path)
        # data_dir="" passes no --data-dir: the server uses its default ./et-data (cwd = tmp_path)
        self._pass_data_dir = data_dir != ""
        self.data_dir = Path(data_dir) if data_dir else self.tmp_path / "et-data"
        self.store = store
        self.blobs = blobs
        self.workers = workers
        self.args = list(args)
        self.env = dict(env or {})
        self.healthy = healthy
        self.timeout = timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.tmp_path / "serve.log"
        self._log_offset = 0

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("server not started")
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "elasticthought", "serve", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port)]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        if self._pass_data_dir:
            cmd += ["--data-dir", str(self.data_dir)]
        if self.store:
            cmd += ["--store", self.store]
        if self.blobs:
            cmd += ["--blobs", self.blobs]
        return cmd + self.args

    def start(self) -> LiveServer:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("server already running")
        env = {**os.environ, **self.env}
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.tmp_path.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"--- start: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=str(self.tmp_path),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerStartError(
                    f"elasticthought serve exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            if not self.port:
                match = LISTEN_RE.search(self._new_log())
                if match:
                    self.port = int(match.group(2))
            if self.port and self._answers():
                return
            time.sleep(0.05)
        raise ServerStartError(
            f"elasticthought serve not ready after {self.timeout}s:\n{self.log_tail()}"
        )

    def _answers(self) -> bool:
        try:
            response = requests.get(self.url + "/health", timeout=5)
        except requests.RequestException:
            return False
        return response.status_code == 200 or not self.healthy

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait (bounded); SIGKILL if it does not exit. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> int | None:
        """SIGKILL at once (a crash, as far as the service can tell)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        return self.proc.returncode

    def restart(self, kill: bool = False) -> LiveServer:
        """Stop (or kill) and start again on the same port and data dir."""
        self.kill() if kill else self.stop()
        return self.start()

    # -- logs -------------------------------------------------------------------------------

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log()[-chars:]

    def _new_log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    # -- context manager --------------------------------------------------------------------

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Any]:
    """A factory: `live_server(**LiveServer kwargs)` starts a server; all stop after the test."""
    servers: list[LiveServer] = []

    def make(**kwargs: Any) -> LiveServer:
        sub = tmp_path / f"server{len(servers)}"
        server = LiveServer(sub, **kwargs)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()
