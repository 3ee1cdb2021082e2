"""The CouchDB-protocol store: Sync Gateway (admin port), Apache CouchDB 3, PouchDB Server.

Document reads and writes go through pycouchdb's `Resource` (its error mapping: 409 ->
`Conflict`, 404 -> `NotFound`); the longpoll changes feed uses requests directly with a client
read timeout (PouchDB Server ignores the `timeout` parameter, and pycouchdb's longpoll feed is
broken). Only `_all_docs` (key ranges, `keys`) and `_changes` are used: Sync Gateway has no views,
no `_find`, and no `skip` or `descending` on `_all_docs`.
Connection errors are retried with backoff for `retry_seconds`, so a server restart is survived.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from .base import OWNER_FIELD, Changes, Conflict, Doc, NotFound, Store, StoreError, new_id

try:
    from pycouchdb import exceptions as couch_errors
    from pycouchdb.resource import Resource
except ImportError as _exc:  # pragma: no cover - pycouchdb needs typing_extensions
    raise ImportError(f"the CouchDB store needs pycouchdb and typing_extensions: {_exc}") from None

T = TypeVar("T")

KEY_END = "\ufff0"  # high sentinel for `_all_docs` key ranges (CouchDB's documented idiom)
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 60.0
LONGPOLL_SLACK = 0.05  # client read timeout past the longpoll timeout (a late answer is
# dropped safely: the caller asks again from the same sequence)
RETRY_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
)


def _masked(url: str) -> tuple[str, str, tuple[str, str] | None]:
    """(URL without credentials, URL with the password masked, credentials)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    bare = urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    shown = urlunsplit((parts.scheme, f"{parts.username}:***@{netloc}", parts.path, "", ""))
    creds = (requests.utils.unquote(parts.username), requests.utils.unquote(parts.password or ""))
    return bare, shown, creds


def _why(exc: BaseException) -> str:
    """A short reason for a connection failure."""
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("Failed to resolve", "unknown host"),
        ("No route to host", "no route to host"),
        ("RemoteDisconnected", "connection closed by the server"),
        ("Connection reset", "connection reset"),
    ):
        if needle in text:
            return reason
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return text[:300]


def _reason(result: Any) -> str:
    if isinstance(result, dict):
        return ": ".join(str(result[k]) for k in ("error", "reason") if result.get(k))
    return str(result) if result else "no details"


def _encode(doc: Doc) -> bytes:
    """The JSON body of a write; fields starting with `_` other than `_id`/`_rev` are refused
    (as the sqlite store does; CouchDB reserves them)."""
    for key in doc:
        if key.startswith("_") and key not in ("_id", "_rev"):
            raise StoreError(f"document field {key!r} is reserved (fields may not start with _)")
    try:
        return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise StoreError(f"document is not valid JSON: {exc}") from None


def _doc_path(doc_id: str) -> str:
    if not isinstance(doc_id, str) or not doc_id:
        raise StoreError(f"document id must be a non-empty string, got {doc_id!r}")
    if doc_id.startswith("_"):
        raise StoreError(f"document ids may not start with '_': {doc_id!r}")
    return quote(doc_id, safe="")


class CouchStore(Store):
    """A database on a CouchDB-protocol server, addressed as `http(s)://HOST:PORT/DB`."""

    conflict_backoff = (0.005, 0.2)  # a round trip costs milliseconds: spread racers wider

    def __init__(
        self,
        url: str,
        create: bool = True,
        retry_seconds: float = 30.0,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.url = url.rstrip("/")  # as given (credentials included): other processes reuse it
        bare, self.shown_url, creds = _masked(self.url)
        parts = urlsplit(bare)
        self.db_name = parts.path.strip("/")
        self.server_url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
        self.db_url = f"{self.server_url}/{quote(self.db_name, safe='')}"
        self.retry_seconds = retry_seconds
        self.request_timeout = request_timeout
        self.create_db = create
        self._creds = creds
        self._connect()
        self._open()

    def _connect(self) -> None:
        """A fresh HTTP session (thread-safe pool); remade in a forked child."""
        self._pid = os.getpid()
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=64)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update(
            {"Accept": "application/json", "Content-Type": "application/json"}
        )
        if self._creds:
            self.session.auth = self._creds
        self.resource = Resource(
            self.db_url, session=self.session, timeout=(CONNECT_TIMEOUT, self.request_timeout)
        )

    def _forked(self) -> None:
        if self._pid != os.getpid():
            self._connect()

    # Plumbing ----------------------------------------------------------------------------------

    def _open(self) -> None:
        """Check the database exists (creating it when allowed); errors name the URL."""

        def check() -> None:
            try:
                self.resource.get()
            except couch_errors.NotFound:
                if not self.create_db:
                    raise StoreError(
                        f"store {self.shown_url}: database {self.db_name!r} does not exist"
                    ) from None
                self._create_database()

        self._call(check, retry=False)

    def _unreachable(self, exc: BaseException) -> StoreError:
        return StoreError(f"store {self.shown_url} is unreachable: {_why(exc)}")

    def _create_database(self) -> None:
        try:
            self.resource.put()
        except couch_errors.Conflict:
            pass  # created meanwhile by someone else

    def _call(self, fn: Callable[[], T], retry: bool = True) -> T:
        """Run one request, mapping errors; retry connection errors for `retry_seconds`."""
        self._forked()
        deadline = time.monotonic() + (self.retry_seconds if retry else 0.0)
        delay = 0.05
        while True:
            try:
                return fn()
            except RETRY_ERRORS as exc:
                if time.monotonic() + delay > deadline:
                    raise self._unreachable(exc) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except couch_errors.Conflict as exc:
                raise Conflict(f"conflict: {exc}") from None
            except couch_errors.NotFound as exc:
                raise NotFound(f"not found: {exc}") from None
            except couch_errors.Error as exc:
                reason = _reason(exc.args[0] if exc.args else exc)
                raise StoreError(f"store {self.shown_url}: {reason}") from None
            except (ValueError, KeyError) as exc:  # a non-JSON answer
                raise StoreError(f"store {self.shown_url}: unexpected answer: {exc}") from None
            except requests.RequestException as exc:
                raise StoreError(f"store {self.shown_url}: {exc}") from None

    def _put(self, doc_id: str, data: bytes) -> str:
        response, result = self.resource.put(_doc_path(doc_id), data=data)
        if response.status_code == 409:
            raise couch_errors.Conflict(_reason(result))
        if not isinstance(result, dict) or "rev" not in result:
            raise StoreError(f"store {self.shown_url}: unexpected answer to a write: {result!r}")
        return str(result["rev"])

    def _exists(self, doc_id: str) -> bool:
        try:
            self.get(doc_id)
        except NotFound:
            return False
        return True

    # Store contract ------------------------------------------------------------------------------

    def get(self, doc_id: str) -> Doc:
        path = _doc_path(doc_id)

        def fetch() -> Doc:
            # requests directly: pycouchdb reads a body field `error: conflict` as a conflict.
            response = self.session.get(
                f"{self.db_url}/{path}", timeout=(CONNECT_TIMEOUT, self.request_timeout)
            )
            if response.status_code == 404:
                raise couch_errors.NotFound(_reason(_json(response)))
            if response.status_code >= 400:
                raise couch_errors.GenericError(_json(response))
            result = response.json()
            if not isinstance(result, dict) or "_id" not in result:
                raise StoreError(
                    f"store {self.shown_url}: unexpected answer for {doc_id}: {result!r}"
                )
            return result

        try:
            return self._call(fetch)
        except NotFound:
            raise NotFound(f"document {doc_id} not found") from None

    def create(self, doc: Doc) -> Doc:
        body = dict(doc)
        if not body.get("_id"):
            if not body.get("type"):
                raise StoreError("a new document needs an _id or a type")
            body["_id"] = new_id(str(body["type"]), body.get(OWNER_FIELD))
        body.pop("_rev", None)
        doc_id = body["_id"]
        data = _encode(body)
        try:
            rev = self._call(lambda: self._put(doc_id, data))
        except Conflict:
            raise Conflict(f"document {doc_id} already exists") from None
        return {**doc, "_id": doc_id, "_rev": rev}

    def update(self, doc: Doc) -> Doc:
        doc_id = doc.get("_id")
        if not doc_id:
            raise StoreError("update needs the document's _id")
        if not doc.get("_rev"):
            raise Conflict(f"update of {doc_id} needs the _rev it read")
        data = _encode(doc)
        rev = self._checked_write(doc_id, doc["_rev"], lambda: self._put(doc_id, data))
        return {**doc, "_rev": rev}

    def _cas_update(self, doc: Doc) -> Doc:
        """`update` without telling a missing document from a stale revision (one request
        fewer per conflict); `modify` reads the document again, which raises `NotFound`."""
        if not doc.get("_id") or not doc.get("_rev"):
            return self.update(doc)
        data = _encode(doc)
        try:
            rev = self._call(lambda: self._put(doc["_id"], data))
        except Conflict:
            raise Conflict(f"document {doc['_id']}: revision {doc['_rev']} is stale") from None
        return {**doc, "_rev": rev}

    def delete(self, doc_id: str, rev: str) -> None:
        path = _doc_path(doc_id)
        self._checked_write(doc_id, rev, lambda: self.resource.delete(path, params={"rev": rev}))

    def _checked_write(self, doc_id: str, rev: str, request: Callable[[], Any]) -> Any:
        """`_call(request)` for a write of `doc_id` at `rev`: a missing document is `NotFound`,
        a conflict on an existing one a stale revision."""
        try:
            return self._call(request)
        except Conflict:
            if not self._exists(doc_id):
                raise NotFound(f"document {doc_id} not found") from None
            raise Conflict(f"document {doc_id}: revision {rev} is stale") from None
        except NotFound:
            raise NotFound(f"document {doc_id} not found") from None

    def _changes_once(self, since: str | None, timeout: float) -> Changes:
        self._forked()
        params: dict[str, Any] = {"since": since if since not in (None, "") else "0"}
        read_timeout = self.request_timeout
        if timeout > 0:
            params["feed"] = "longpoll"
            params["timeout"] = int(timeout * 1000)
            read_timeout = timeout + LONGPOLL_SLACK
        try:
            response = self.session.get(
                f"{self.db_url}/_changes",
                params=params,
                timeout=(CONNECT_TIMEOUT, read_timeout),
            )
        except requests.ReadTimeout:
            if timeout > 0:  # PouchDB Server ignores `timeout`: nothing changed meanwhile
                return Changes([], str(params["since"]))
            raise
        if response.status_code == 404:
            raise couch_errors.NotFound(_reason(response.text))
        if response.status_code >= 400:
            raise couch_errors.GenericError(f"{response.status_code} {response.text[:200]}")
        result = response.json()
        ids = [
            str(row["id"])
            for row in result.get("results", [])
            if not str(row.get("id", "_")).startswith("_")
        ]
        return Changes(ids, str(result.get("last_seq", params["since"])))

    def changes(self, since: str | None = None, timeout: float = 0.0) -> Changes:
        if since == "now" and timeout > 0:
            since = self.changes("now").last_seq  # a real sequence, so a timeout loses nothing
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = 0.05
        retry_until = time.monotonic() + max(self.retry_seconds, timeout)
        while True:
            left = max(0.0, deadline - time.monotonic()) if timeout > 0 else 0.0
            try:
                result = self._changes_once(since, left)
            except RETRY_ERRORS as exc:
                if time.monotonic() + delay > retry_until:
                    raise self._unreachable(exc) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except couch_errors.NotFound as exc:
                raise StoreError(f"store {self.shown_url}: changes feed not found: {exc}") from None
            except couch_errors.Error as exc:
                raise StoreError(f"store {self.shown_url}: changes feed failed: {exc}") from None
            except ValueError as exc:
                raise StoreError(
                    f"store {self.shown_url}: unexpected changes answer: {exc}"
                ) from None
            # Entries for ids we skip (design docs, `_user/`) advance the sequence: return them
            # only when some id remains, unless time is up.
            if result.ids or timeout <= 0 or time.monotonic() >= deadline:
                return result
            since = result.last_seq

    def list_prefix(
        self, prefix: str, limit: int | None = None, skip: int = 0, descending: bool = False
    ) -> list[Doc]:
        """Ids by key range, ordered, sliced here; then the chosen documents by `keys`.

        Sync Gateway's `_all_docs` knows only `startkey`, `endkey`, `limit` and `keys` (no
        `skip`, no `descending`), so ordering and pagination happen on the client: the id list
        of one owner's documents of one type is small, their bodies are fetched only for a page.
        """
        if limit is not None and limit <= 0:
            return []
        range_params = {"startkey": json.dumps(prefix), "endkey": json.dumps(prefix + KEY_END)}

        def fetch_ids() -> list[str]:
            _, result = self.resource.get("_all_docs", params=range_params)
            if not isinstance(result, dict) or "rows" not in result:
                raise StoreError(f"store {self.shown_url}: unexpected _all_docs answer: {result!r}")
            return [
                str(row["id"])
                for row in result["rows"]
                if str(row.get("id", "")).startswith(prefix) and not row.get("error")
            ]

        ids = sorted(self._call(fetch_ids), reverse=descending)
        chosen = ids[max(0, skip) :]
        if limit is not None:
            chosen = chosen[:limit]
        if not chosen:
            return []
        body = json.dumps({"keys": chosen}).encode()

        def fetch_docs() -> list[Doc]:
            params = {"include_docs": "true"}
            _, result = self.resource.post("_all_docs", params=params, data=body)
            if not isinstance(result, dict) or "rows" not in result:
                raise StoreError(f"store {self.shown_url}: unexpected _all_docs answer: {result!r}")
            # Documents deleted meanwhile come back without a body: leave them out.
            return [row["doc"] for row in result["rows"] if isinstance(row.get("doc"), dict)]

        return self._call(fetch_docs)

    def ping(self) -> None:
        self._forked()
        try:
            response = self.session.get(self.db_url, timeout=(CONNECT_TIMEOUT, 10.0))
        except requests.RequestException as exc:
            raise self._unreachable(exc) from None
        if response.status_code != 200:
            reason = _reason(_json(response))
            raise StoreError(f"store {self.shown_url} answered {response.status_code}: {reason}")

    def close(self) -> None:
        self.session.close()

    def __repr__(self) -> str:
        return f"CouchStore({self.shown_url!r})"


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text[:200]
