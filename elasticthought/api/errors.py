"""The API's errors: every error a blueprint raises is an `ApiError(code, detail)`, a werkzeug
`HTTPException` that app.py's handler answers as `{"error": <status name>, "detail": ...}` (it
also renders that JSON by itself, without the handler)."""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

AUTHENTICATE = 'Basic realm="elasticthought"'  # the challenge every 401 carries


class ApiError(HTTPException):
    """An HTTP error with a JSON body naming the problem."""

    def __init__(self, code: int, detail: str, retry_after: float | None = None) -> None:
        self.code = code
        super().__init__(description=detail)
        self.detail = detail
        self.retry_after = retry_after  # seconds, sent as Retry-After (429, 503)

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:  # noqa: ARG002
        body = json.dumps({"error": self.name, "detail": self.detail})
        resp = Response(body, status=self.code, mimetype="application/json")
        if self.code == 401:
            resp.headers["WWW-Authenticate"] = AUTHENTICATE
        if self.retry_after is not None:
            resp.headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return resp


def bad_request(detail: str) -> ApiError:
    return ApiError(400, detail)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"no {what} with id {ident!r}")
