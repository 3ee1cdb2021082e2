"""Run a real PouchDB Server (npm `pouchdb-server`, a CouchDB-protocol server) for tests.

    server = PouchDBServer()                    # in memory, free loopback port
    server = PouchDBServer(data_dir=tmp_path)   # LevelDB files in data_dir: data outlive restarts
    server.start(); server.url  -> "http://127.0.0.1:PORT";  server.db_url("name")
    server.stop(); server.start()               # same port again, so store URLs stay valid

The binary is `$ET_POUCHDB_SERVER` or `<repo>/node_modules/.bin/pouchdb-server` (installed by
`npm ci --ignore-scripts`; leveldown's prebuilt N-API binary loads without install scripts).
Facts measured here: the longpoll `timeout` parameter is ignored (use a client read timeout),
continuous feeds need `Accept-Encoding: identity`, an unknown `_changes` filter kills the process.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0

# Loaded into node before pouchdb-server: exit when the Python process that started us is gone
# (killed test runs must not leave servers behind; atexit covers only clean exits).
WATCHDOG_JS = """
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 500).unref();
"""


_live: weakref.WeakSet[PouchDBServer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    """Never leave a server behind when the test process ends early."""
    for server in list(_live):
        server.stop(timeout=5)


class PouchDBUnavailable(RuntimeError):
    """PouchDB Server (or node) is not installed, or it did not start."""


def find_pouchdb_server() -> list[str]:
    """The command that runs pouchdb-server; raise `PouchDBUnavailable` naming what is missing."""
    explicit = os.environ.get("ET_POUCHDB_SERVER")
    script = Path(explicit) if explicit else REPO / "node_modules" / ".bin" / "pouchdb-server"
    if not script.exists():
        raise PouchDBUnavailable(
            f"{script} not found: run `npm ci --ignore-scripts` in {REPO} "
            "(or set ET_POUCHDB_SERVER)"
        )
    node = shutil.which("node")
    if node is None:
        raise PouchDBUnavailable("node is not on PATH (PouchDB Server needs Node.js)")
    return [node, str(script.resolve())]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PouchDBServer:
    """One pouchdb-server process on a loopback port, in memory or on a LevelDB directory."""

    def __init__(
        self, data_dir: str | os.PathLike[str] | None = None, port: int | None = None
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._own_work = tempfile.mkdtemp(prefix="et-pouchdb-")
        self.work_dir = Path(self._own_work)  # config.json and log.txt go here
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's root URL, e.g. http://127.0.0.1:PORT (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    @property
    def in_memory(self) -> bool:
        return self.data_dir is None

    def db_url(self, name: str) -> str:
        """The store URL of database `name` on this server."""
        return f"{self.url}/{name}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _log_tail(self) -> str:
        try:
            text = (self.work_dir / "stdout.log").read_text(errors="replace")
        except OSError:
            return ""
        return text[-2000:]

    def start(self, timeout: float = START_TIMEOUT) -> PouchDBServer:
        """Start the process and wait until it answers; raise `PouchDBUnavailable` if not."""
        if self.running:
            return self
        node, script = find_pouchdb_server()
        watchdog = self.work_dir / "watchdog.js"
        watchdog.write_text(WATCHDOG_JS)
        command = [node, "--require", str(watchdog), script] + [
            "--host", self.host,
            "--port", str(self.port),
            "--config", str(self.work_dir / "config.json"),
            "--no-color",
        ]  # fmt: skip
        if self.data_dir is None:
            command.append("--in-memory")
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            command += ["--dir", str(self.data_dir)]
        log = open(self.work_dir / "stdout.log", "ab")
        try:
            self.process = subprocess.Popen(
                command,
                cwd=self.work_dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PouchDBUnavailable(
                    f"pouchdb-server exited with {self.process.returncode}: {self._log_tail()}"
                )
            try:
                if requests.get(self.url + "/", timeout=1.0).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise PouchDBUnavailable(f"pouchdb-server did not answer within {timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL); in-memory data are lost."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def restart(self) -> PouchDBServer:
        """Stop and start again on the same port."""
        self.stop()
        return self.start()

    def create_db(self, name: str) -> str:
        """Create database `name`; return its URL."""
        response = requests.put(self.db_url(name), timeout=10)
        if response.status_code not in (201, 202, 412):
            raise RuntimeError(f"creating {name}: {response.status_code} {response.text}")
        return self.db_url(name)

    def delete_db(self, name: str) -> None:
        """Delete database `name` if it exists (quietly when the server is down)."""
        try:
            requests.delete(self.db_url(name), timeout=10)
        except requests.RequestException:
            pass

    def close(self) -> None:
        """Stop and remove the work folder (config and log)."""
        self.stop()
        shutil.rmtree(self._own_work, ignore_errors=True)

    def __enter__(self) -> PouchDBServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.data_dir is None else str(self.data_dir)
        return f"PouchDBServer({self.url}, {where}, running={self.running})"
