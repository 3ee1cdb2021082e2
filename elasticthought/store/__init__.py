"""Document stores (DESIGN.md §3): `open_store(url)` picks the backend from the URL.

- `sqlite:///ABSOLUTE/PATH` or `sqlite:RELATIVE/PATH` — the embedded store (one SQLite file).
- `http(s)://HOST:PORT/DB` — Sync Gateway (admin port), CouchDB 3 or PouchDB Server.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from elasticthought.metrics.hooks import timed_store

from .base import ID_SEP, Changes, Conflict, Doc, NotFound, Store, StoreError, id_prefix, new_id

__all__ = [
    "ID_SEP",
    "Changes",
    "Conflict",
    "Doc",
    "NotFound",
    "Store",
    "StoreError",
    "id_prefix",
    "new_id",
    "open_store",
    "sqlite_path",
]


def sqlite_path(url: str) -> str:
    """The file path of a `sqlite:` URL (`sqlite:///abs/path` or `sqlite:rel/path`)."""
    rest = url[len("sqlite:") :]
    if rest.startswith("//"):
        # sqlite:///abs/path -> netloc must be empty; sqlite://host/... is not a file.
        if not rest.startswith("///"):
            raise StoreError(
                f"malformed store URL {url!r}: use sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH"
            )
        rest = rest[2:]
    if not rest or rest.endswith("/") or "?" in rest or "#" in rest:
        raise StoreError(
            f"malformed store URL {url!r}: use sqlite:///ABSOLUTE/PATH or sqlite:RELATIVE/PATH"
        )
    return rest


def open_store(url: str, create: bool = True) -> Store:
    """Open the document store at `url`; `create` allows making a missing database.

    A malformed or unsupported URL, or one that cannot be opened, raises `StoreError` naming it.
    """
    if not isinstance(url, str) or not url.strip():
        raise StoreError(f"malformed store URL {url!r}: empty")
    url = url.strip()
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        from .sqlite import SqliteStore

        return timed_store(SqliteStore(sqlite_path(url), create=create, url=url), "sqlite")
    if scheme in ("http", "https"):
        parts = urlsplit(url)
        db = parts.path.strip("/")
        if not parts.hostname or not db or "/" in db:
            raise StoreError(
                f"malformed store URL {url!r}: use http(s)://HOST:PORT/DB (one database name)"
            )
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise StoreError(f"malformed store URL {url!r}: bad port") from None
        from .couch import CouchStore

        return timed_store(CouchStore(url, create=create), "couchdb")
    raise StoreError(
        f"unsupported store URL {url!r}: use sqlite:///ABSOLUTE/PATH, sqlite:RELATIVE/PATH "
        "or http(s)://HOST:PORT/DB"
    )
