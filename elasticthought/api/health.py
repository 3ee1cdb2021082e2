"""`GET /health`: which store and blob backends this process uses and whether each answers.

200 when both are reachable, 503 otherwise; URLs are shown without credentials.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, jsonify

import elasticthought
from elasticthought.api.app import get_services

bp = Blueprint("health", __name__, url_prefix="/health")


def redact_url(url: str) -> str:
    """`url` without a user name or password."""
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port:
            host = f"{host}:{parts.port}"
    except ValueError:
        return "(unparseable URL)"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def backend_kind(url: str) -> str:
    """A short name of the backend behind a store or blob URL."""
    scheme = url.split(":", 1)[0].lower()
    return {"http": "couchdb", "https": "couchdb"}.get(scheme, scheme)


def probe(backend: Any) -> dict[str, Any]:
    """Ping one backend; report kind, URL, reachability, latency and the failure reason."""
    url = getattr(backend, "url", "")
    report: dict[str, Any] = {
        "kind": getattr(backend, "kind", None) or backend_kind(url),
        "url": redact_url(url),
    }
    start = time.monotonic()
    try:
        backend.ping()
    except Exception as exc:  # any failure means "not reachable"; the reason goes to the user
        reason = f"{type(exc).__name__}: {exc}".replace(url, report["url"]) if url else str(exc)
        report.update(ok=False, error=reason)
    else:
        report["ok"] = True
    report["latency_ms"] = round((time.monotonic() - start) * 1000, 1)
    return report


@bp.get("")
def health():
    services = get_services()
    store = probe(services.store)
    blobs = probe(services.blobs)
    ok = store["ok"] and blobs["ok"]
    body = {
        "status": "ok" if ok else "unavailable",
        "version": elasticthought.__version__,
        "store": store,
        "blobs": blobs,
        "workers": services.config.workers if services.pool is not None else 0,
    }
    return jsonify(body), (200 if ok else 503)
