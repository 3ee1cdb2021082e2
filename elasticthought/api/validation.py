"""Checking a request: its JSON body and fields, query parameters (pagination), and the URLs
it names (against the fetch policy, before any job runs)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from flask import request

from elasticthought.api.errors import bad_request
from elasticthought.api.services import config
from elasticthought.fetch import FetchPolicy, check_url, resolve


def json_body(
    allowed: Iterable[str], required: Iterable[str] = (), body: Any = None
) -> dict[str, Any]:
    """The request's JSON object; unknown or missing fields are rejected by name."""
    if body is None:
        raw = request.get_data(cache=True)
        if not raw.strip():
            raise bad_request("request body must be a JSON object; it is empty")
        body = load_json(raw, "request body")
    if not isinstance(body, dict):
        raise bad_request(f"request body must be a JSON object, not {type(body).__name__}")
    check_fields(body, allowed, required)
    return body


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[][{}]")


def json_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub(b"", raw)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def load_json(raw: bytes | str, what: str) -> Any:
    """Parse user JSON: nesting deeper than `--max-json-depth` is refused before parsing;
    NaN/Infinity and lone surrogates are refused. Errors are 400s naming `what`."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    limit = config().max_json_depth
    depth = json_depth(data)
    if depth > limit:
        raise bad_request(
            f"{what} nests JSON {depth} levels deep; the limit is {limit} (--max-json-depth)"
        )
    try:
        value = json.loads(raw, parse_constant=no_json_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise bad_request(f"{what} nests JSON too deeply") from None
    check_unicode(value, what)
    return value


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


def vet_url(url: str) -> None:
    """Check a user-given URL now, before any job runs: its form and scheme against the fetch
    policy and, for http(s), that its host resolves to an allowed address. Raises `FetchError`
    (or `ValueError` for a malformed port)."""
    policy = FetchPolicy.from_config(config())
    parts = check_url(url, policy)
    if parts.scheme.lower() in ("http", "https"):
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        resolve(parts.hostname or "", port, policy)
