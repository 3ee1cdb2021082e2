"""The embedded document store: one SQLite file in WAL mode (the zero-setup default).

One row per document id holds its current body, revision (`N-hash`, as in CouchDB), a deleted
flag (tombstones stay so deletes appear in the changes feed) and the sequence of its last change.
Writers serialize with `BEGIN IMMEDIATE`; each thread has its own connection (a forked child
opens its own). `changes` waits on a condition shared by every store of this process open on the
same file, and polls the sequence every 25 ms to notice writes by other processes.
Sequences are decimal strings; `since="now"` starts from the current end of the feed.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
import weakref
from typing import Any

from .base import OWNER_FIELD, Changes, Conflict, Doc, NotFound, Store, StoreError, new_id

POLL_SECONDS = 0.025  # how often a waiting changes() looks for writes by other processes
BUSY_TIMEOUT_MS = 30_000
ALLOWED_SPECIAL = ("_id", "_rev")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs (
    id TEXT PRIMARY KEY,
    rev TEXT NOT NULL,
    seq INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS docs_seq ON docs (seq);
"""

# One condition per database file, shared by every SqliteStore of this process on that file.
_conditions: dict[str, threading.Condition] = {}
_conditions_lock = threading.Lock()


def _reset_after_fork() -> None:
    """A forked child starts with fresh conditions (a parent thread may have held one)."""
    global _conditions_lock
    _conditions.clear()
    _conditions_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _condition_for(path: str) -> threading.Condition:
    with _conditions_lock:
        cond = _conditions.get(path)
        if cond is None:
            cond = _conditions[path] = threading.Condition()
        return cond


def parse_seq(since: str | None) -> int:
    """Our sequence tokens are decimal strings; None, "" and "0" mean the start."""
    if since is None or since == "" or since == "now":
        return 0
    try:
        value = int(str(since))
    except ValueError:
        raise StoreError(f"invalid changes sequence {since!r} for this sqlite store") from None
    if value < 0:
        raise StoreError(f"invalid changes sequence {since!r} for this sqlite store")
    return value


def next_rev(old_rev: str | None, body: str, deleted: bool = False) -> str:
    """A CouchDB-style revision `N-md5`, N one more than the previous generation."""
    gen = int(old_rev.split("-", 1)[0]) if old_rev else 0
    digest = hashlib.md5(
        f"{old_rev or ''}\0{int(deleted)}\0{body}".encode(), usedforsecurity=False
    ).hexdigest()
    return f"{gen + 1}-{digest}"


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1])
        if code < 0x10FFFF:
            chars[-1] = chr(code + 1)
            return "".join(chars)
        chars.pop()
    return None


def split_body(doc: Doc) -> str:
    """The JSON text stored for a document: every field except `_id` and `_rev`."""
    for key in doc:
        if key.startswith("_") and key not in ALLOWED_SPECIAL:
            raise StoreError(f"document field {key!r} is reserved (fields may not start with _)")
    body = {k: v for k, v in doc.items() if k not in ALLOWED_SPECIAL}
    try:
        return json.dumps(body, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"document is not valid JSON: {exc}") from None


class SqliteStore(Store):
    """Documents in one SQLite file (WAL), safe for many threads and processes."""

    def __init__(self, path: str, create: bool = True, url: str | None = None) -> None:
        self.path = os.path.abspath(path)
        self.url = url or f"sqlite://{self.path}"
        if not os.path.exists(self.path):
            if not create:
                raise StoreError(f"store {self.url}: database file {self.path} does not exist")
            parent = os.path.dirname(self.path)
            try:
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"store {self.url}: cannot create {parent}: {exc}") from None
        self._local = threading.local()
        self._all: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        self._closed = False
        self._pid = os.getpid()
        self._cond = _condition_for(self.path)
        conn = self._conn()
        try:
            with _conditions_lock:  # one schema creation at a time within this process
                conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.url}: cannot open database: {exc}") from None

    # Connections -------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            # Forked: never use the parent's connections (SQLite forbids it); leave them be.
            self._pid = os.getpid()
            self._local = threading.local()
            self._all = []
            self._all_lock = threading.Lock()
            self._cond = _condition_for(self.path)
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreError(f"store {self.url} is closed")
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"store {self.url}: cannot switch to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.url}: cannot open database: {exc}") from None
        self._local.conn = conn
        with self._all_lock:
            # Close the connections of threads that have ended (worker threads come and go).
            alive = []
            for ref, other in self._all:
                thread = ref()
                if thread is not None and thread.is_alive():
                    alive.append((ref, other))
                else:
                    other.close()
            alive.append((weakref.ref(threading.current_thread()), conn))
            self._all = alive
        return conn

    def _write(self, fn: Any) -> Any:
        """Run `fn(conn)` in an immediate transaction, then wake this process's waiters."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.url}: write failed: {exc}") from None
        with self._cond:
            self._cond.notify_all()
        return result

    @staticmethod
    def _next_seq(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM docs").fetchone()[0])

    def _read(self, sql: str, args: tuple | list = ()) -> list[tuple]:
        """All rows of one read query; a database error is a `StoreError`."""
        try:
            return self._conn().execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.url}: read failed: {exc}") from None

    def _max_seq(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(seq), 0) FROM docs")[0][0])

    # Store contract ------------------------------------------------------------------------------

    def get(self, doc_id: str) -> Doc:
        rows = self._read("SELECT rev, body FROM docs WHERE id = ? AND deleted = 0", (doc_id,))
        if not rows:
            raise NotFound(f"document {doc_id} not found")
        row = rows[0]
        doc = json.loads(row[1])
        doc["_id"] = doc_id
        doc["_rev"] = row[0]
        return doc

    def create(self, doc: Doc) -> Doc:
        doc_id = doc.get("_id")
        if not doc_id:
            if not doc.get("type"):
                raise StoreError("a new document needs an _id or a type")
            doc_id = new_id(str(doc["type"]), doc.get(OWNER_FIELD))
        if not isinstance(doc_id, str):
            raise StoreError(f"document id must be a string, got {doc_id!r}")
        body = split_body(doc)

        def insert(conn: sqlite3.Connection) -> str:
            row = conn.execute("SELECT rev, deleted FROM docs WHERE id = ?", (doc_id,)).fetchone()
            if row is not None and not row[1]:
                raise Conflict(f"document {doc_id} already exists")
            rev = next_rev(row[0] if row else None, body)
            seq = self._next_seq(conn)
            conn.execute(
                "INSERT OR REPLACE INTO docs (id, rev, seq, deleted, body) VALUES (?, ?, ?, 0, ?)",
                (doc_id, rev, seq, body),
            )
            return rev

        rev = self._write(insert)
        return {**doc, "_id": doc_id, "_rev": rev}

    def update(self, doc: Doc) -> Doc:
        doc_id = doc.get("_id")
        if not doc_id:
            raise StoreError("update needs the document's _id")
        rev = doc.get("_rev")
        if not rev:
            raise Conflict(f"update of {doc_id} needs the _rev it read")
        body = split_body(doc)

        def replace(conn: sqlite3.Connection) -> str:
            row = conn.execute("SELECT rev, deleted FROM docs WHERE id = ?", (doc_id,)).fetchone()
            if row is None or row[1]:
                raise NotFound(f"document {doc_id} not found")
            if row[0] != rev:
                raise Conflict(f"document {doc_id}: revision {rev} is stale (now {row[0]})")
            new = next_rev(rev, body)
            conn.execute(
                "UPDATE docs SET rev = ?, seq = ?, body = ? WHERE id = ?",
                (new, self._next_seq(conn), body, doc_id),
            )
            return new

        new_rev = self._write(replace)
        return {**doc, "_rev": new_rev}

    def delete(self, doc_id: str, rev: str) -> None:
        def remove(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT rev, deleted FROM docs WHERE id = ?", (doc_id,)).fetchone()
            if row is None or row[1]:
                raise NotFound(f"document {doc_id} not found")
            if row[0] != rev:
                raise Conflict(f"document {doc_id}: revision {rev} is stale (now {row[0]})")
            conn.execute(
                "UPDATE docs SET rev = ?, seq = ?, deleted = 1, body = '{}' WHERE id = ?",
                (next_rev(rev, "{}", deleted=True), self._next_seq(conn), doc_id),
            )

        self._write(remove)

    def _changes_after(self, since: int) -> Changes:
        rows = self._read("SELECT id, seq FROM docs WHERE seq > ? ORDER BY seq", (since,))
        if not rows:
            return Changes([], str(since))
        return Changes([r[0] for r in rows], str(rows[-1][1]))

    def changes(self, since: str | None = None, timeout: float = 0.0) -> Changes:
        after = self._max_seq() if since == "now" else parse_seq(since)
        result = self._changes_after(after)
        if result.ids or timeout <= 0:
            return result
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return result
            with self._cond:
                if self._max_seq() <= after:
                    self._cond.wait(min(left, POLL_SECONDS))
            if self._max_seq() > after:
                return self._changes_after(after)

    def list_prefix(
        self, prefix: str, limit: int | None = None, skip: int = 0, descending: bool = False
    ) -> list[Doc]:
        end = prefix_end(prefix)
        sql = "SELECT id, rev, body FROM docs WHERE deleted = 0 AND id >= ?"
        args: list[Any] = [prefix]
        if end is not None:
            sql += " AND id < ?"
            args.append(end)
        sql += " ORDER BY id DESC" if descending else " ORDER BY id"
        sql += " LIMIT ? OFFSET ?"
        args += [-1 if limit is None else max(0, int(limit)), max(0, int(skip))]
        rows = self._read(sql, args)
        docs = []
        for doc_id, rev, body in rows:
            doc = json.loads(body)
            doc["_id"] = doc_id
            doc["_rev"] = rev
            docs.append(doc)
        return docs

    def ping(self) -> None:
        try:
            self._conn().execute("SELECT 1 FROM docs LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store {self.url}: {exc}") from None

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            conns, self._all = self._all, []
        for _, conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"
