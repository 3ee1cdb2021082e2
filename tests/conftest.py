"""Shared pytest fixtures (owned by the store engineer; other areas add theirs additively).

PouchDB Server (a real CouchDB-protocol server, tests/support/pouchdb.py; install it with
`npm ci --ignore-scripts` at the repo root). When it cannot be found or started, tests that need
it fail when CI=true and are skipped otherwise.

- `pouchdb_server` (session): a `PouchDBServer` in memory on a free loopback port, shared by the
  whole run. `.url` is the root ("http://127.0.0.1:PORT"), `.db_url(name)` a database's URL.
  Do not stop it (other tests share it); for restarts use `pouchdb_leveldb` or your own instance.
- `pouchdb_url` (function): the URL of a fresh, not yet created database on `pouchdb_server`
  (what `--store` takes); deleted after the test.
- `pouchdb_leveldb` (function): a private `PouchDBServer` whose LevelDB files live in tmp_path, so
  its data outlive `.stop()` / `.start()` / `.restart()` (same port). Stopped after the test.
- `sqlite_url` (function): `sqlite:///<tmp_path>/store.db` (a fresh file).
- `store_backend` (function, parametrized "sqlite" / "couch"): the backend name; every test that
  uses `store_url` or `store` runs once per backend (ids `test_x[sqlite]`, `test_x[couch]`).
- `store_url` (function): a fresh store URL of `store_backend`.
- `store` (function): an open, empty `Store` on `store_url`; closed after the test.
- `sqlite_store`, `couch_store` (function): one backend only.

Helpers: `from tests.support.pouchdb import PouchDBServer, PouchDBUnavailable, free_port`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from elasticthought.store import Store, open_store
from tests.support.pouchdb import PouchDBServer, PouchDBUnavailable
from tests.support.server import live_server  # noqa: F401 - fixture: live `serve` processes

BACKENDS = ["sqlite", "couch"]


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def pouchdb_missing(reason: str) -> None:
    """Fail in CI, skip elsewhere."""
    message = f"PouchDB Server unavailable: {reason}"
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def _running(server: PouchDBServer) -> Iterator[PouchDBServer]:
    """Start `server` (see `pouchdb_missing` when it cannot), yield it, stop it."""
    try:
        server.start()
    except PouchDBUnavailable as exc:
        server.close()
        pouchdb_missing(str(exc))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def pouchdb_server() -> Iterator[PouchDBServer]:
    yield from _running(PouchDBServer())


@pytest.fixture
def pouchdb_url(pouchdb_server: PouchDBServer) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:16]}"
    if not pouchdb_server.running:  # a test stopped the shared server: bring it back
        pouchdb_server.start()
    yield pouchdb_server.db_url(name)
    if pouchdb_server.running:
        pouchdb_server.delete_db(name)


@pytest.fixture
def pouchdb_leveldb(tmp_path: Path) -> Iterator[PouchDBServer]:
    yield from _running(PouchDBServer(data_dir=tmp_path / "pouchdb-leveldb"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path / 'store.db'}"


@pytest.fixture(params=BACKENDS)
def store_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(request: pytest.FixtureRequest, store_backend: str) -> str:
    return request.getfixturevalue("sqlite_url" if store_backend == "sqlite" else "pouchdb_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[Store]:
    opened = open_store(sqlite_url)
    yield opened
    opened.close()


@pytest.fixture
def couch_store(pouchdb_url: str) -> Iterator[Store]:
    opened = open_store(pouchdb_url)
    yield opened
    opened.close()
