"""elasticthought.fetch: schemes, refused addresses (every hop of a redirect), size limits."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from elasticthought.fetch import FetchError, FetchPolicy, TooLarge, fetch_bytes, resolve


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", self.path.split("to=", 1)[1])
            self.end_headers()
            return
        if self.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"z" * 10)
            self.wfile.flush()
            self.server.release.wait(10)  # type: ignore[attr-defined]
            return
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(20):
                self.wfile.write(b"400\r\n" + b"x" * 1024 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        body = b"y" * 5000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def local() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.release = threading.Event()  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.release.set()  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.0.0.8",
        "192.168.1.1",
        "169.254.169.254",
        "::1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "fe80::1",
        "224.0.0.1",
        "localhost",
    ],
)
def test_refused_addresses(host):
    with pytest.raises(FetchError, match="allow-private-urls"):
        resolve(host, 80, FetchPolicy())
    assert resolve(host, 80, FetchPolicy(allow_private=True))


def test_schemes_and_redirects(local, tmp_path):
    policy = FetchPolicy(allow_private=True)
    for url, word in [
        ("ftp://x.org/a", "scheme"),
        ("gopher://x", "scheme"),
        ("http://", "host"),
        ("file:///etc/hostname", "file://"),
        ("", "non-empty"),
    ]:
        with pytest.raises(FetchError, match=word):
            fetch_bytes(url, policy)
    with pytest.raises(FetchError, match="loopback"):
        fetch_bytes(local + "/plain", FetchPolicy())
    assert fetch_bytes(local + "/redirect?to=/plain", policy) == b"y" * 5000
    with pytest.raises(FetchError, match="file://"):
        fetch_bytes(local + "/redirect?to=file:///etc/hostname", policy)
    target = tmp_path / "f.bin"
    target.write_bytes(b"abc")
    assert fetch_bytes(target.as_uri(), FetchPolicy(allow_file=True)) == b"abc"


def test_size_limits(local):
    with pytest.raises(TooLarge, match="over the limit"):
        fetch_bytes(local + "/plain", FetchPolicy(allow_private=True, max_bytes=4999))
    assert len(fetch_bytes(local + "/chunked", FetchPolicy(allow_private=True))) == 20 * 1024
    with pytest.raises(TooLarge, match="larger than the limit"):
        fetch_bytes(local + "/chunked", FetchPolicy(allow_private=True, max_bytes=10_000))


def test_stalled_download_times_out(local):
    policy = FetchPolicy(allow_private=True, stall_timeout=0.3)
    with pytest.raises(FetchError, match="timed out"):
        fetch_bytes(local + "/stall", policy)
