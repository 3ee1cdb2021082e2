"""The HTTP front: waitress, hardened against slow and idle clients.

waitress reads requests on one asyncio-style loop and hands only complete requests to its
threads, so a slow client costs a connection, never a thread. What it lacks is a deadline on a
request that never completes and a connection budget idle clients cannot fill. This module adds:

- a header deadline: a request whose headers are not in after `--http-header-timeout` seconds is
  dropped (slowloris sends one header line now and then and would otherwise stay for ever);
- a body rate: once its headers are in, a body must average `--http-min-body-rate` bytes/s;
- idle keep-alive connections close after `--http-idle-timeout` (waitress's channel timeout);
- spare connections: whenever fewer than `HTTP_SPARE_CONNECTIONS` slots of
  `--http-connection-limit` are free, the oldest connections that are not being answered
  (unfinished or idle) are dropped, so a flood of slow clients cannot lock others out;
- held bodies: the request bodies the front holds at once (being received, or complete and
  waiting for their request to end; waitress keeps each in memory or a temporary file) are
  counted over every connection; a body that would take the sum past `--http-max-held-bytes`
  is refused with 503, so many large uploads at once cannot fill the disk before any of them is
  checked;
- an upload route (the routes with the large body limit, all of which need a user) is refused
  with 401 as soon as its headers show no credentials, before its body is held;
- waitress's own errors (a body over its size limit, a malformed request) answered with the
  service's JSON error body.

The sweeps run on waitress's loop every `HTTP_CLEANUP_INTERVAL` seconds (its `maintenance`).
Behind a reverse proxy the same rules hold per proxy connection.
"""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.task import ErrorTask
from waitress.utilities import Error, RequestEntityTooLarge

from elasticthought import limits
from elasticthought.api.auth import AUTH_REQUIRED, SCHEMES
from elasticthought.api.errors import AUTHENTICATE


class _Discard:
    """A request-body buffer that keeps nothing (a body over its limit being drained)."""

    def __init__(self) -> None:
        self.length = 0

    def append(self, data: bytes) -> None:
        self.length += len(data)

    def __len__(self) -> int:
        return self.length

    def getfile(self) -> io.BytesIO:
        return io.BytesIO(b"")

    def close(self) -> None:
        pass


class _Unauthorized(Error):
    code = 401
    reason = "Unauthorized"


class _Busy(Error):
    code = 503
    reason = "Service Unavailable"


class HeldBodies:
    """Request-body bytes the front holds at once, over every connection of one server."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._lock = threading.Lock()

    def take(self, amount: int) -> bool:
        """Count `amount` more bytes held; False (nothing counted) past the limit."""
        with self._lock:
            if self.total + amount > self.limit:
                return False
            self.total += amount
            return True

    def give_back(self, amount: int) -> None:
        with self._lock:
            self.total -= amount


def _has_credentials(headers: dict) -> bool:
    scheme = str(headers.get("AUTHORIZATION", "")).split(" ", 1)[0].lower()
    return scheme in SCHEMES


class _TimedParser(HTTPRequestParser):
    """waitress's request parser, remembering when the request's first byte came and when its
    headers were in, and refusing a body over its route's limit as soon as that is known (the
    declared length at once, a chunked body when it passes the limit)."""

    max_json_body = limits.MAX_JSON_BODY_BYTES  # set per server by `harden`
    max_upload = limits.MAX_UPLOAD_BYTES
    held = HeldBodies(limits.HTTP_MAX_HELD_BYTES_CAP)

    def __init__(self, adj: Any) -> None:
        super().__init__(adj)
        self.started = time.monotonic()
        self.headers_at: float | None = None
        self.body_limit: tuple[int, str] | None = None
        self.refusal: Error | None = None
        self.draining = False
        self.drained_from = 0
        self.counted = 0  # body bytes of this request counted in `held`

    def received(self, data: bytes) -> int:
        before = self.body_bytes_received
        consumed = super().received(data)
        if self.headers_finished and self.headers_at is None:
            self.headers_at = time.monotonic()
            self.body_limit = limits.body_limit(
                self.command or "", self.path or "", self.max_json_body, self.max_upload
            )
            if self.body_limit[1] == limits.UPLOAD_FLAG and not _has_credentials(self.headers):
                self.refusal = _Unauthorized(AUTH_REQUIRED)
        if self.error is None and self.refusal is None and self.body_limit is not None:
            limit, flag = self.body_limit
            if max(self.content_length or 0, self.body_bytes_received) > limit:
                self.refusal = RequestEntityTooLarge(limits.body_too_large(limit, flag))
        grown = self.body_bytes_received - before
        if self.error is None and self.refusal is None and not self.draining and grown > 0:
            if self.held.take(grown):
                self.counted += grown
            else:
                self.refusal = _Busy(
                    "the server holds as many request bodies as it may at once "
                    "(--http-max-held-bytes); try again shortly"
                )
        if self.error is None and self.refusal is not None:
            self._refuse(self.refusal)
        return consumed

    def _refuse(self, error: Error) -> None:
        """Answer `error` without keeping the body: the rest of it is read and dropped (up to
        `limits.HTTP_DRAIN_BYTES`, so the client is still reading when the answer comes
        instead of meeting a reset), then answered; beyond that, or when the declared length
        leaves more than that to send, the connection closes. A client that sent
        `Expect: 100-continue` gets the answer at once, before any body."""
        if self.expect_continue and not self.body_bytes_received:
            self.body_rcv = None  # the client waits for "100 Continue": refuse at once
            self.expect_continue = False  # and it gets no "100 Continue" either
        elif not self.draining and self.body_rcv is not None:
            self.draining = True
            self.drained_from = self.body_bytes_received
            self.release()
            self.body_rcv.buf.close()
            self.body_rcv.buf = _Discard()
        left = (self.content_length or 0) - self.body_bytes_received
        drained = self.body_bytes_received - self.drained_from
        if (
            self.completed
            or self.body_rcv is None
            or left > limits.HTTP_DRAIN_BYTES
            or drained > limits.HTTP_DRAIN_BYTES
        ):
            self.error = error
            self.completed = True

    def release(self) -> None:
        """Give back the body bytes this request held (once)."""
        if self.counted:
            self.held.give_back(self.counted)
            self.counted = 0

    def close(self) -> None:
        """(waitress: the request ended) its body is dropped."""
        self.release()
        super().close()


class _JsonErrorTask(ErrorTask):
    """waitress's error answer (400, 413, ...) with the service's JSON body."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": error.reason, "detail": error.body}).encode("utf-8")
        self.status = f"{error.code} {error.reason}"
        self.response_headers.extend(
            [("Content-Length", str(len(body))), ("Content-Type", "application/json")]
        )
        if error.code == 401:
            self.response_headers.append(("WWW-Authenticate", AUTHENTICATE))
        elif error.code == 503:
            self.response_headers.append(("Retry-After", "1"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class GuardedChannel(HTTPChannel):
    """A waitress connection with timed requests and JSON errors."""

    parser_class = _TimedParser
    error_task_class = _JsonErrorTask

    def handle_close(self) -> None:
        request = self.request  # a request still being received when the connection ends
        if isinstance(request, _TimedParser):
            request.release()
        super().handle_close()


def _body_received(request: Any) -> int:
    body = getattr(request, "body_rcv", None)
    if body is None:
        return 0
    try:
        return int(getattr(body, "cl", 0) or len(body))
    except TypeError:
        return 0


def too_slow(request: Any, now: float, header_timeout: float, min_body_rate: float) -> bool:
    """Whether an unfinished request broke the header deadline or the body rate."""
    if request is None or request.completed:
        return False
    if request.headers_at is None:
        return now - request.started > header_timeout
    elapsed = now - request.headers_at
    return elapsed > header_timeout and _body_received(request) < min_body_rate * elapsed


def harden(
    server: Any,
    header_timeout: float,
    min_body_rate: float,
    max_json_body: int = limits.MAX_JSON_BODY_BYTES,
    max_upload: int = limits.MAX_UPLOAD_BYTES,
    max_held: int = limits.HTTP_MAX_HELD_BYTES_CAP,
) -> Any:
    """Install the guarded channel and the sweeps on a waitress server made by
    `waitress.create_server` (before it runs)."""
    parser = type(
        "_ServerParser",
        (_TimedParser,),
        {"max_json_body": max_json_body, "max_upload": max_upload, "held": HeldBodies(max_held)},
    )
    server.channel_class = type("_ServerChannel", (GuardedChannel,), {"parser_class": parser})
    base_maintenance = server.maintenance

    def maintenance(now: float) -> None:
        base_maintenance(now)  # idle keep-alive connections (channel_timeout)
        mono = time.monotonic()
        channels = [c for c in list(server._map.values()) if isinstance(c, GuardedChannel)]
        droppable = []
        for channel in channels:
            if channel.requests or channel.will_close:
                continue  # being answered, or already going
            request = channel.request
            if too_slow(request, mono, header_timeout, min_body_rate):
                channel.will_close = True
                continue
            started = request.started if request is not None else channel.last_activity
            droppable.append((started if request is not None else mono - 1e9, channel))
        excess = len(server._map) - (server.adj.connection_limit - limits.HTTP_SPARE_CONNECTIONS)
        if excess > 0:
            # Idle ones first (their key is far in the past), then the oldest unfinished.
            for _, channel in sorted(droppable, key=lambda item: item[0])[:excess]:
                channel.will_close = True

    server.maintenance = maintenance
    return server


def server_options(config: Any) -> dict[str, Any]:
    """waitress settings of the front (besides host, port and threads)."""
    return {
        "connection_limit": max(limits.HTTP_SPARE_CONNECTIONS * 2, config.http_connection_limit),
        "channel_timeout": max(1, int(config.http_idle_timeout)),
        "cleanup_interval": limits.HTTP_CLEANUP_INTERVAL,
        "asyncore_use_poll": True,  # select() fails past 1024 descriptors
        "max_request_body_size": config.max_upload_bytes + limits.MIB,
        "max_request_header_size": 64 * 1024,
        "clear_untrusted_proxy_headers": True,
    }
