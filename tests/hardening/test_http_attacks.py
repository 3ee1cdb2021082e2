"""Attacks on the HTTP front of a live `serve` (embedded store), each reproduced and refused:
slowloris connections, huge and deep bodies. Loopback only; counts and times bounded."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.api import helpers as h
from tests.support.memory import MB, PeakRss
from tests.support.server import LiveServer

SLOWLORIS_CONNECTIONS = 500
HEADER_TIMEOUT = 4.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(
        tmp_path, workers=0, args=["--http-header-timeout", str(HEADER_TIMEOUT)]
    ) as srv:
        yield srv


def health_seconds(url: str) -> float:
    started = time.monotonic()
    response = requests.get(url + "/health", timeout=5)
    assert response.status_code == 200
    return time.monotonic() - started


@contextlib.contextmanager
def slowloris(port: int, count: int) -> Iterator[Callable[[], list[socket.socket]]]:
    """`count` connections that each sent a request line and one header; the function yielded
    sends one more header line on each and returns them. Closed at the end."""
    conns: list[socket.socket] = []

    def keep_sending() -> list[socket.socket]:
        for sock in conns:
            try:
                sock.sendall(b"X-a: b\r\n")
            except OSError:
                pass
        return conns

    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            conns.append(sock)
        yield keep_sending
    finally:
        for sock in conns:
            sock.close()


def test_slowloris_500_connections_cannot_block_health(server: LiveServer) -> None:
    """500 clients that send one header line now and then: /health still answers within 1 s,
    and the server drops them once the header deadline passes."""
    with slowloris(server.port, SLOWLORIS_CONNECTIONS) as keep_sending:
        for _ in range(3):
            conns = keep_sending()
            assert health_seconds(server.url) < 1.0
            time.sleep(0.5)
        # Past the header deadline every one of them is closed by the server.
        deadline = time.monotonic() + HEADER_TIMEOUT + 10
        open_left = list(conns)
        while open_left and time.monotonic() < deadline:
            still = []
            for sock in open_left:
                sock.settimeout(0.01)
                try:
                    if sock.recv(1) == b"":
                        continue  # closed by the server
                except (TimeoutError, BlockingIOError):
                    pass
                except OSError:
                    continue
                still.append(sock)
            open_left = still
            time.sleep(0.2)
        assert not open_left, f"{len(open_left)} slowloris connections still open"


def test_connection_flood_never_locks_out_health(tmp_path: Path) -> None:
    """More idle connections than the connection budget: the oldest are dropped, /health
    still answers."""
    with LiveServer(tmp_path, workers=0, args=["--http-connection-limit", "300"]) as srv:
        conns = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(400)]
        try:
            time.sleep(2.5)  # a sweep or two
            assert health_seconds(srv.url) < 1.0
        finally:
            for sock in conns:
                sock.close()


def read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response (status, lower-case headers, body) from a raw socket."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data[:200]!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(
        (k.strip().lower(), v.strip()) for k, v in (line.split(":", 1) for line in lines[1:])
    )
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_unauthenticated_500mb_body_is_refused_without_memory_growth(server: LiveServer) -> None:
    """A 500 MB JSON body to POST /users (no login), streamed from a generator without a
    length (chunked): 413 with our JSON error, and the server's memory grows < 100 MB."""
    sent = 0

    def body() -> Iterator[bytes]:
        chunk = b" " * (1 << 20)
        yield b'{"username": "'
        for _ in range(500):
            yield chunk

    def send(sock: socket.socket) -> None:
        nonlocal sent
        try:
            for part in body():
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                sent += len(part)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server answered and closed: it read no further

    with (
        PeakRss(server.proc.pid) as peak,
        socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock,
    ):
        sock.sendall(
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sender = threading.Thread(target=send, args=(sock,), daemon=True)
        sender.start()
        status, headers, answer = read_response(sock, 60)
    assert status == 413
    assert headers["content-type"].startswith("application/json")
    assert "--max-json-body-bytes" in json.loads(answer)["detail"]
    peak.assert_grew_less_than(100 * MB)


def test_declared_oversized_body_is_answered_after_draining(server: LiveServer) -> None:
    """A client that sends a 5 MB JSON body in full (as ordinary clients do before reading
    the answer) gets the 413 JSON, not a connection reset."""
    response = requests.post(
        server.url + "/users",
        data=b"{" + b" " * 5_000_000 + b"}",
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 413
    assert "--max-json-body-bytes" in response.json()["detail"]


def test_declared_oversized_body_is_refused_before_reading(server: LiveServer) -> None:
    """With `Expect: 100-continue`, a Content-Length over the JSON limit is answered 413 JSON
    before the client sends any body."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Expect: 100-continue\r\nContent-Length: 5000000\r\n\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/json" in answer


def test_body_over_upload_limit_gets_json_413(server: LiveServer) -> None:
    """Even the front's own absolute limit (above the upload limit) answers our JSON error."""
    response = requests.post(
        server.url + "/datafiles",
        headers={"Content-Length": str(10**12), "Content-Type": "multipart/form-data; b=x"},
        data=b"",
        timeout=10,
    )
    assert response.status_code == 413
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]


@pytest.mark.parametrize("depth", [100_000, 33])
def test_deeply_nested_json_is_a_400(server: LiveServer, depth: int) -> None:
    """JSON nested deeper than the limit: 400 naming the limit, never a RecursionError."""
    body = "[" * depth + "]" * depth
    response = requests.post(
        server.url + "/users",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400, response.text
    assert "--max-json-depth" in response.json()["detail"]


def _start_upload(port: int, declared: int, send: int, auth: str | None) -> socket.socket:
    """A raw `POST /datafiles` declaring `declared` body bytes and sending `send` of them."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST /datafiles HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\n"
        + (f"Authorization: {auth}\r\n" if auth else "")
        + "\r\n"
    )
    sock.sendall(head.encode())
    chunk = b"\0" * (1 << 20)
    sent = 0
    try:
        while sent < send:
            piece = chunk[: min(len(chunk), send - sent)]
            sock.sendall(piece)
            sent += len(piece)
    except OSError:
        pass  # the server answered and closed
    return sock


def test_anonymous_upload_is_refused_before_its_body_is_held(server: LiveServer) -> None:
    """Attack: no login, a 400 MB upload (waitress would keep it in a temporary file until the
    app says 401). The front answers 401 once the headers are in, holding none of it."""
    for auth in (None, "Nonsense abc"):
        sock = _start_upload(server.port, 400_000_000, 1 << 20, auth)
        with sock:
            status, headers, body = read_response(sock, 10)
        assert status == 401, body
        assert headers["content-type"].startswith("application/json")
        assert headers["www-authenticate"].lower().startswith("basic")
        assert "authentication required" in json.loads(body)["detail"]


def test_bodies_held_at_once_are_bounded(tmp_path: Path) -> None:
    """Attack: a signed-up user starts large uploads on many connections at once, each body
    kept by the front until it is complete. Past --http-max-held-bytes (30 MB here) the next
    body is refused with 503 naming it; once the held ones end, their bytes are free again
    and 16 MB uploads go through, one after another. /health answers throughout."""
    held = 30_000_000
    with LiveServer(tmp_path, workers=0, args=["--http-max-held-bytes", str(held)]) as srv:
        user = h.new_user(srv.url, "holder")
        auth = "Basic " + base64.b64encode(f"{user.username}:{user.password}".encode()).decode()
        first = _start_upload(srv.port, 20_000_000, 18_000_000, auth)
        second = _start_upload(srv.port, 20_000_000, 20_000_000, auth)  # dropped once past
        with second:
            status, _, body = read_response(second, 20)
        assert status == 503, body
        assert "--http-max-held-bytes" in json.loads(body)["detail"]
        assert health_seconds(srv.url) < 1.0
        first.close()  # the server drops the unfinished body it held
        data = b"\0" * 16_000_000
        wait_until = time.monotonic() + 10
        while True:
            r = user.post("/datafiles", files={"file": ("a.tar.gz", data)})
            if r.status_code != 503 or time.monotonic() > wait_until:
                break
            time.sleep(0.2)  # the close reaches the server's loop
        assert r.status_code == 201, r.text
        # a finished request frees what it held too: two more of 16 MB fit one after another
        for _ in range(2):
            user.ok("POST", "/datafiles", 201, files={"file": ("a.tar.gz", data)})


def _closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed `sock` (reading and dropping what it sends), or None."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < within:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except OSError:
            return time.monotonic() - started
    return None


def test_slow_body_is_dropped_at_the_body_rate(server: LiveServer) -> None:
    """Attack: complete headers, then a body at about 10 bytes/s (below --http-min-body-rate's
    1024): the server drops the connection soon after the header deadline instead of keeping
    a connection per attacker for the hours the body would take."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with sock:
        sock.sendall(
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n"
        )
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < HEADER_TIMEOUT + 10 and not closed:
            try:
                sock.sendall(b"  ")
            except OSError:
                closed = True
                break
            closed = _closed_by_server(sock, 0.1) is not None
        assert closed, "a 10 bytes/s body kept its connection"
        assert time.monotonic() - started < HEADER_TIMEOUT + 10
        assert health_seconds(server.url) < 1.0


def test_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    """A client that keeps its connection open after an answer and sends nothing more is
    closed after --http-idle-timeout (2 s here), so idle clients do not pile up."""
    with LiveServer(tmp_path, workers=0, args=["--http-idle-timeout", "2"]) as srv:
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        with sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, _ = read_response(sock, 5)
            assert status == 200
            seconds = _closed_by_server(sock, 15)
        assert seconds is not None, "the idle connection stayed open"
        assert 1.0 <= seconds < 8, seconds
