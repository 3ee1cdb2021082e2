"""Attacks through requests that make the server download or build something, on a live
`serve` (embedded store): slow URLs and an oversized deploy net cannot stall or grow it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.api import helpers as h
from tests.hardening.test_http_attacks import health_seconds, rss_bytes
from tests.support.server import LiveServer

SLOW_DOWNLOADS = 20


class SlowServer:
    """A loopback HTTP server that answers every request with a body sent at 1 byte/s."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                while not self.stop.wait(1.0):
                    conn.sendall(b"#")
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(
        tmp_path,
        workers=0,
        args=["--allow-private-urls", "--job-memory-limit", "2048", "--http-threads", "16"],
    ) as srv:
        yield srv


def test_twenty_slow_downloads_cannot_stall_health(server: LiveServer) -> None:
    """20 classifier POSTs whose specification-url drips 1 byte/s: /health answers within 1 s
    the whole time; each POST ends (a 4xx/503, never a hang past the request deadline)."""
    slow = SlowServer()
    user = h.new_user(server.url, "slow")
    try:
        with ThreadPoolExecutor(SLOW_DOWNLOADS) as pool:
            posts = [
                pool.submit(
                    user.post,
                    "/classifiers",
                    json={"specification-url": f"{slow.url}/deploy{i}.prototxt"},
                    timeout=120,
                )
                for i in range(SLOW_DOWNLOADS)
            ]
            h.wait_for(lambda: slow.connections >= 1, "a slow download to start", 30)
            for _ in range(8):
                assert health_seconds(server.url) < 1.0
                time.sleep(0.5)
            statuses = [p.result().status_code for p in posts]
        assert all(400 <= s < 500 or s == 503 for s in statuses), statuses
    finally:
        slow.close()


DEPLOY = """
name: "huge"
input: "data"
input_shape { dim: 1 dim: 1 dim: 28 dim: 28 }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: NUM } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


@pytest.mark.parametrize("num_output", [10_000_000, 1_000_000])
def test_oversized_deploy_net_never_grows_the_server(server: LiveServer, num_output: int) -> None:
    """A classifier whose deploy net has InnerProduct num_output huge: built in a bounded
    child, so the server's memory grows < 100 MB; the answer is a clean 4xx and nothing of
    the classifier is left behind."""
    user = h.new_user(server.url, "big")
    from elasticthought.engine.proto import caffe_pb2

    model = caffe_pb2.NetParameter(name="huge").SerializeToString()
    before = rss_bytes(server.proc.pid)
    peak = before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_bytes(server.proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        response = user.post(
            "/classifiers",
            files={
                "model": ("m.caffemodel", model),
                "specification": ("deploy.prototxt", DEPLOY.replace("NUM", str(num_output))),
            },
            data={"image-width": "28", "image-height": "28"},
            timeout=180,
        )
    finally:
        stop.set()
        sampler.join()
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert peak - before < 100 * 1024 * 1024, f"server grew {(peak - before) >> 20} MB"
    assert "huge" not in user.get("/classifiers").text
    blobs = server.data_dir / "blobs"
    leftovers = [p for p in blobs.rglob("*") if p.is_file() and "classifier" in str(p)]
    assert not leftovers, leftovers


def test_fetched_content_is_never_echoed_in_errors(server: LiveServer, tmp_path: Path) -> None:
    """Attack: with --allow-private-urls, point a solver at a private resource that is not a
    prototxt and read it back from the parse error. The error gives the place, not the text."""
    secret = "TOPSECRET_token_0123456789"
    root = tmp_path / "private"
    root.mkdir()
    (root / "secret.txt").write_text(f"{secret}: 1\n")
    (root / "net.prototxt").write_text(f'layer {{ name: "{secret}" type: "{secret}" }}\n')
    files = h.FileServer(root)
    try:
        user = h.new_user(server.url, "leak")
        df = user.ok("POST", "/datafiles", 201, json={"url": files.url + "/a.tar.gz"})
        ds = user.ok(
            "POST", "/datasets", 201,
            json={"training": {"datafile-id": df["id"], "split-percentage": 0.7},
                  "testing": {"datafile-id": df["id"], "split-percentage": 0.3}},
        )  # fmt: skip
        for body in (
            {"specification-url": files.url + "/secret.txt", "specification-net": "name: 'x'"},
            {"specification": "base_lr: 0.1", "specification-net-url": files.url + "/net.prototxt"},
            {"specification": "base_lr: 0.1", "specification-net-url": files.url + "/secret.txt"},
        ):
            r = user.post("/solvers", json={"dataset-id": ds["id"], **body})
            assert r.status_code == 422, r.text
            assert secret not in r.text, r.text
        r = user.post("/classifiers", json={"specification-url": files.url + "/secret.txt"})
        assert 400 <= r.status_code < 500 and secret not in r.text, r.text
    finally:
        files.close()
