"""Request body limits per route, checked before the app reads a byte of the body.

A WSGI middleware around the Flask app: a route listed in `limits.UPLOAD_ROUTES` may take a
body up to `--max-upload-bytes` (uploads stream to the blob store); every other request up to
`--max-json-body-bytes`. A declared `Content-Length` over the limit is answered 413 at once; the
body stream is also capped, so a body without a length can never be read past the limit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from elasticthought import limits


def _too_large(start_response: Callable, limit: int, flag: str) -> Iterable[bytes]:
    body = json.dumps(
        {
            "error": "Request Entity Too Large",
            "detail": limits.body_too_large(limit, flag),
        }
    ).encode("utf-8")
    start_response(
        "413 Request Entity Too Large",
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


class _CappedInput:
    """`wsgi.input` that ends at `limit` bytes (what follows is never read)."""

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.left = limit

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.stream.read(size)
        self.left -= len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.stream.readline(size)
        self.left -= len(data)
        return data

    def __iter__(self) -> Any:
        while line := self.readline():
            yield line


class BodyLimits:
    """The middleware; `config` gives `max_json_body_bytes` and `max_upload_bytes`."""

    def __init__(self, app: Callable, config: Any) -> None:
        self.app = app
        self.config = config

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        limit, flag = limits.body_limit(
            environ.get("REQUEST_METHOD", "GET"),
            environ.get("PATH_INFO", ""),
            self.config.max_json_body_bytes,
            self.config.max_upload_bytes,
        )
        length_text = environ.get("CONTENT_LENGTH") or ""
        try:
            length = int(length_text) if length_text else None
        except ValueError:
            length = None
        if length is not None and length > limit:
            return _too_large(start_response, limit, flag)
        stream = environ.get("wsgi.input")
        if stream is not None:
            environ["wsgi.input"] = _CappedInput(stream, limit if length is None else length)
        return self.app(environ, start_response)
