"""Shared request helpers of the resource blueprints: JSON errors, body checking, pagination,
owned-document lookup.

Every error the resource blueprints raise is an `ApiError(code, detail)`: a werkzeug
`HTTPException`, which app.py's handler answers as `{"error": <status name>, "detail": ...}`
(it also renders that JSON by itself, without the handler).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Response, g, request
from werkzeug.exceptions import HTTPException

from elasticthought.api.app import get_blobs, get_config, get_store
from elasticthought.fetch import FetchPolicy, check_url, resolve
from elasticthought.queue.context import job_work_dir
from elasticthought.queue.control import request_cancel
from elasticthought.queue.registry import PROCESSING
from elasticthought.store.base import Conflict, Doc, NotFound, StoreError


class ApiError(HTTPException):
    """An HTTP error with a JSON body naming the problem."""

    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        super().__init__(description=detail)
        self.detail = detail

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:  # noqa: ARG002
        body = json.dumps({"error": self.name, "detail": self.detail})
        resp = Response(body, status=self.code, mimetype="application/json")
        if self.code == 401:
            resp.headers["WWW-Authenticate"] = 'Basic realm="elasticthought"'
        return resp


def bad_request(detail: str) -> ApiError:
    return ApiError(400, detail)


def not_found(what: str, ident: str) -> ApiError:
    return ApiError(404, f"no {what} with id {ident!r}")


def now() -> float:
    return round(time.time(), 3)


# The services of the current app (app.py's accessors, by the short names handlers use).
store = get_store
blobs = get_blobs
config = get_config


def json_body(
    allowed: Iterable[str], required: Iterable[str] = (), body: Any = None
) -> dict[str, Any]:
    """The request's JSON object; unknown or missing fields are rejected by name."""
    if body is None:
        raw = request.get_data(cache=True)
        if not raw.strip():
            raise bad_request("request body must be a JSON object; it is empty")
        try:
            body = json.loads(raw, parse_constant=no_json_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(f"request body is not valid JSON: {exc}") from None
        check_unicode(body)
    if not isinstance(body, dict):
        raise bad_request(f"request body must be a JSON object, not {type(body).__name__}")
    check_fields(body, allowed, required)
    return body


def no_json_constant(name: str) -> Any:
    """`json.loads` hook: NaN and Infinity are not JSON (they could not be stored)."""
    raise ValueError(f"{name} is not a JSON number")


def check_unicode(value: Any, what: str = "request body") -> None:
    """Reject strings that are not valid Unicode (a lone surrogate escape such as "\\udc00"):
    they could not be stored or sent back as UTF-8."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise bad_request(
            f"{what} is not valid JSON: a string holds a lone surrogate {bad!r}"
        ) from None


def check_fields(
    obj: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str] = (), where: str = ""
) -> None:
    allowed = set(allowed)
    prefix = f"{where}: " if where else ""
    unknown = sorted(k for k in obj if k not in allowed)
    if unknown:
        raise bad_request(
            f"{prefix}unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    missing = [k for k in required if obj.get(k) in (None, "")]
    if missing:
        raise bad_request(f"{prefix}missing required field(s): {', '.join(missing)}")


def want_str(obj: Mapping[str, Any], key: str, max_len: int = 4096, where: str = "") -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad_request(f"{where or ''}{key!r} must be a string")
    if len(value) > max_len:
        raise bad_request(f"{where or ''}{key!r} is longer than {max_len} characters")
    return value


def want_bool(obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = obj.get(key, default)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise bad_request(f"{key!r} must be a boolean")


def pagination() -> tuple[int, int]:
    """`limit` (1..1000, default 100) and `skip` (>= 0) from the query string."""
    def number(name: str, default: int, low: int, high: int) -> int:
        text = request.args.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            raise bad_request(f"query parameter {name!r} must be an integer") from None
        if not low <= value <= high:
            raise bad_request(f"query parameter {name!r} must be between {low} and {high}")
        return value

    unknown = sorted(set(request.args) - {"limit", "skip"})
    if unknown:
        raise bad_request(f"unknown query parameter(s): {', '.join(unknown)}")
    return number("limit", 100, 1, 1000), number("skip", 0, 0, 10**9)


def current_user() -> Doc:
    return g.et_user


def user_id() -> str:
    return g.et_user["_id"]


def owned(doc_id: str, doc_type: str) -> Doc:
    """The caller's document of `doc_type`, else 404 (another user's looks exactly missing)."""
    what = doc_type.replace("-", " ")
    if not isinstance(doc_id, str) or len(doc_id) > 512 or not doc_id.startswith(doc_type + ":"):
        raise not_found(what, str(doc_id)[:200])
    try:
        doc = store().get(doc_id)
    except NotFound:
        raise not_found(what, doc_id) from None
    except StoreError as exc:
        raise ApiError(503, f"document store failed: {exc}") from None
    if doc.get("type") != doc_type or doc.get("user-id") != user_id():
        raise not_found(what, doc_id)
    return doc


def referenced(doc_id: str, doc_type: str, field: str) -> Doc:
    """The caller's document of `doc_type` that the request's `field` names; 422 (not 404: the
    route exists) when there is none."""
    try:
        return owned(doc_id, doc_type)
    except ApiError as exc:
        if exc.code != 404:
            raise
        what = doc_type.replace("-", " ")
        raise ApiError(422, f"'{field}': no {what} with id {doc_id!r}") from None


def vet_url(url: str) -> None:
    """Check a user-given URL now, before any job runs: its form and scheme against the fetch
    policy and, for http(s), that its host resolves to an allowed address. Raises `FetchError`
    (or `ValueError` for a malformed port)."""
    policy = FetchPolicy.from_config(config())
    parts = check_url(url, policy)
    if parts.scheme.lower() in ("http", "https"):
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        resolve(parts.hostname or "", port, policy)


def public(doc: Doc, hidden: Iterable[str] = ()) -> dict[str, Any]:
    """A document as the API shows it: `id` added, internal fields removed."""
    out = {k: v for k, v in doc.items() if k not in set(hidden)}
    out["id"] = doc["_id"]
    return out


def list_owned(doc_type: str, hidden: Iterable[str] = ()) -> dict[str, Any]:
    limit, skip = pagination()
    docs = store().list(doc_type, owner=user_id(), limit=limit, skip=skip, newest_first=True)
    docs = [d for d in docs if d.get("user-id") == user_id()]
    return {"items": [public(d, hidden) for d in docs], "limit": limit, "skip": skip}


def dependents(doc_type: str, field: str, doc_id: str) -> list[str]:
    """Ids of the caller's documents of `doc_type` whose `field` (or nested) names `doc_id`."""
    found = []
    for doc in store().list(doc_type, owner=user_id(), limit=None, newest_first=False):
        if _mentions(doc, field, doc_id):
            found.append(doc["_id"])
    return found


def _mentions(value: Any, field: str, doc_id: str) -> bool:
    if isinstance(value, dict):
        if value.get(field) == doc_id:
            return True
        return any(_mentions(v, field, doc_id) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, field, doc_id) for v in value)
    return False


def delete_unless_used(doc: Doc, users: list[str], used_by: str) -> tuple[str, int]:
    """DELETE of a resource: 409 "`used_by` <ids>: delete them first" while the documents
    `users` still name it, else `remove_document` and 204."""
    if users:
        raise ApiError(409, f"{used_by} {', '.join(users)}: delete them first")
    remove_document(doc)
    return "", 204


def blob_prefix(doc_id: str) -> str:
    """The blob-store folder of one document: its id with `:` as `/` (`datafile/user~a/KEY/`)."""
    return doc_id.replace(":", "/") + "/"


#: Internal fields never shown by the API.
INTERNAL = ("_rev", "claim-id")


def remove_document(doc: Doc) -> None:
    """Delete a resource: a running job is asked to cancel first (409 until it stopped), then
    its blobs, its job work folder and the document go."""
    what = doc.get("type", "document").replace("-", " ")
    if "processing-state" in doc:
        state = doc.get("processing-state")
        if state == PROCESSING:
            request_cancel(store(), doc["_id"])
            raise ApiError(
                409, f"the {what} is processing: cancel was requested; retry DELETE once it stopped"
            )
        if state == "pending":
            request_cancel(store(), doc["_id"])
            doc = store().get(doc["_id"])
            if doc.get("processing-state") == PROCESSING:
                raise ApiError(409, f"the {what} just started processing: retry DELETE shortly")
    blobs().delete_prefix(blob_prefix(doc["_id"]))
    work = job_work_dir(config(), doc["_id"])
    shutil.rmtree(work, ignore_errors=True)
    try:
        store().delete(doc["_id"], doc["_rev"])
    except NotFound:
        pass
    except Conflict:
        raise ApiError(409, f"the {what} changed while being deleted: retry") from None
