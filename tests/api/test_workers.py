"""GET /workers against the live servers of tests/api (two workers, both store backends): the
queue's worker presence, authenticated; a running job is named to its owner only."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.api import helpers as h


class _Trickle(http.server.BaseHTTPRequestHandler):
    """Answers slowly (a byte a quarter second) until the server's `release` event is set, so
    the job downloading from it stays `processing` for as long as the test needs."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        deadline = time.monotonic() + 60
        try:
            while not self.server.release.is_set() and time.monotonic() < deadline:  # type: ignore[attr-defined]
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(0.25)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def slow_url() -> Iterator[tuple[str, threading.Event]]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    httpd.daemon_threads = True
    httpd.release = threading.Event()  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/slow.tar.gz", httpd.release
    httpd.release.set()  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


def test_workers_presence(api):
    assert h.Client(api.url).get("/workers").status_code == 401
    user = h.new_user(api.url, "wk")
    workers = h.wait_for(
        lambda: user.ok("GET", "/workers")["items"], "a worker's presence", timeout=30.0
    )
    assert len(workers) == 1  # one serve process (its two threads are one worker)
    w = workers[0]
    assert w["alive"] is True and w["state"] == "running"
    assert w["pid"] == api.proc.pid and w["host"] == socket.gethostname()
    assert w["threads"] == 2 and "torch" in w["capabilities"]["engines"]
    assert isinstance(w["id"], str) and w["id"]
    assert set(w) == {
        "id",
        "host",
        "pid",
        "state",
        "alive",
        "capabilities",
        "threads",
        "running",
        "running-count",
        "started-at",
        "last-seen",
    }
    assert w["started-at"] <= w["last-seen"] <= time.time() + 1
    assert w["running"] == [] or all(
        j.split(":")[1] == f"user~{user.username}" for j in w["running"]
    )
    everything = user.ok("GET", "/workers", params={"all": "true"})["items"]
    assert [x["id"] for x in everything if x["alive"]] == [w["id"]]
    assert user.get("/workers", params={"all": "maybe"}).status_code == 400
    assert user.get("/workers", params={"page": "1"}).status_code == 400


def test_running_jobs_are_named_to_their_owner_only(api, slow_url):
    url, release = slow_url
    owner = h.new_user(api.url, "wo")
    other = h.new_user(api.url, "wx")
    job = owner.ok("POST", "/datafiles", 201, json={"url": url})

    def running_for_owner():
        items = owner.ok("GET", "/workers")["items"]
        return any(job["id"] in w["running"] for w in items)

    h.wait_for(running_for_owner, "the owner's job among the worker's running jobs", timeout=30.0)
    seen = other.ok("GET", "/workers")["items"]
    assert all(job["id"] not in w["running"] for w in seen)
    assert sum(w["running-count"] for w in seen) >= 1
    release.set()
    owner.wait(f"/datafiles/{job['id']}", timeout=60)
