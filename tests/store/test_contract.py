"""The document store contract (DESIGN.md §3), run on both backends: sqlite and a real
PouchDB Server over HTTP. Nothing here uses views or `_find` (Sync Gateway has neither)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from elasticthought.store import (
    Changes,
    Conflict,
    NotFound,
    Store,
    StoreError,
    id_prefix,
    new_id,
    open_store,
)
from tests.support.pouchdb import PouchDBServer, free_port


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):  # noqa: ANN001, ANN201
    """Poll `predicate` until it returns a truthy value or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def collect_changes(store: Store, since: str | None, want: int, timeout: float = 10.0) -> Changes:
    """Read the feed from `since` until `want` ids came (bounded)."""
    ids: list[str] = []
    seq = since
    deadline = time.monotonic() + timeout
    while len(ids) < want and time.monotonic() < deadline:
        page = store.changes(seq, timeout=0.5)
        ids += page.ids
        seq = page.last_seq
    return Changes(ids, seq or "0")


# Documents -------------------------------------------------------------------------------------


def test_create_get_update_delete(store: Store) -> None:
    created = store.create({"type": "datafile", "user-id": "user:ann", "url": "http://x/a.tgz"})
    doc_id = created["_id"]
    assert doc_id.startswith(id_prefix("datafile", "user:ann"))
    assert created["_rev"].startswith("1-")

    got = store.get(doc_id)
    assert got["url"] == "http://x/a.tgz" and got["_rev"] == created["_rev"]

    got["url"] = "http://x/b.tgz"
    updated = store.update(got)
    assert updated["_rev"].startswith("2-") and updated["_rev"] != created["_rev"]
    assert store.get(doc_id)["url"] == "http://x/b.tgz"

    store.delete(doc_id, updated["_rev"])
    with pytest.raises(NotFound):
        store.get(doc_id)
    assert store.list("datafile", "user:ann") == []


def test_create_with_given_id_and_odd_characters(store: Store) -> None:
    doc_id = "user:ann/b c?d#e%f&g+h"
    created = store.create({"_id": doc_id, "type": "user", "name": "ünï"})
    assert created["_id"] == doc_id
    got = store.get(doc_id)
    assert got["name"] == "ünï" and got["_id"] == doc_id


def test_fields_named_like_protocol_errors_round_trip(store: Store) -> None:
    doc = store.create({"type": "classify-job", "error": "conflict", "reason": "not_found"})
    got = store.get(doc["_id"])
    assert got["error"] == "conflict" and got["reason"] == "not_found"
    store.update(got)
    assert store.list("classify-job")[0]["error"] == "conflict"


def test_stale_revision_conflicts(store: Store) -> None:
    first = store.create({"type": "solver", "n": 0})
    second = store.update({**first, "n": 1})
    with pytest.raises(Conflict):
        store.update({**first, "n": 2})
    with pytest.raises(Conflict):
        store.delete(first["_id"], first["_rev"])
    assert store.get(first["_id"])["n"] == 1
    assert store.get(first["_id"])["_rev"] == second["_rev"]


def test_create_of_an_existing_id_conflicts(store: Store) -> None:
    doc = store.create({"_id": "user:bob", "type": "user"})
    with pytest.raises(Conflict):
        store.create({"_id": "user:bob", "type": "user", "other": True})
    assert "other" not in store.get(doc["_id"])


def test_missing_documents_are_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get("user:nobody")
    with pytest.raises(NotFound):
        store.update({"_id": "user:nobody", "_rev": "1-abc", "type": "user"})
    with pytest.raises(NotFound):
        store.delete("user:nobody", "1-abc")


def test_update_without_revision_conflicts(store: Store) -> None:
    doc = store.create({"type": "user"})
    with pytest.raises(Conflict):
        store.update({"_id": doc["_id"], "type": "user"})


def test_reserved_fields_and_non_json_are_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        store.create({"type": "user", "_secret": 1})
    with pytest.raises(StoreError):
        store.create({"type": "user", "when": object()})
    with pytest.raises(StoreError):
        store.create({"type": "user", "x": float("nan")})
    assert store.list("user") == []


def test_recreate_after_delete(store: Store) -> None:
    doc = store.create({"_id": "user:carl", "type": "user", "v": 1})
    store.delete(doc["_id"], doc["_rev"])
    again = store.create({"_id": "user:carl", "type": "user", "v": 2})
    assert store.get("user:carl")["v"] == 2
    assert again["_rev"] != doc["_rev"]


def test_concurrent_compare_and_swap_increments_are_exact(store: Store) -> None:
    doc = store.create({"type": "counter", "n": 0})
    threads, per_thread = 8, 100
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def bump(d: dict) -> None:
        d["n"] += 1

    def worker() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                store.modify(doc["_id"], bump, retries=10_000)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(120)
    assert not errors, errors
    assert not any(t.is_alive() for t in pool)
    final = store.get(doc["_id"])
    assert final["n"] == threads * per_thread
    assert final["_rev"].startswith(f"{threads * per_thread + 1}-")


# Changes feed ----------------------------------------------------------------------------------


def test_changes_in_order_and_resume_from_saved_sequence(store: Store) -> None:
    a = store.create({"_id": "job:a", "type": "job"})
    store.create({"_id": "job:b", "type": "job"})
    first = store.changes()
    assert first.ids == ["job:a", "job:b"]
    assert isinstance(first.last_seq, str)
    saved = first.last_seq

    store.update(a)  # job:a moves after job:b
    store.create({"_id": "job:c", "type": "job"})
    page = collect_changes(store, saved, want=2)
    assert page.ids == ["job:a", "job:c"]

    # Resuming from the same saved sequence with a fresh connection gives the same answer.
    reopened = open_store(store.url)
    try:
        assert collect_changes(reopened, saved, want=2).ids == ["job:a", "job:c"]
        # From the newest sequence nothing is left.
        assert reopened.changes(page.last_seq).ids == []
    finally:
        reopened.close()


def test_changes_from_the_start_list_each_document_once(store: Store) -> None:
    doc = store.create({"_id": "job:x", "type": "job"})
    for _ in range(3):
        doc = store.update(doc)
    assert store.changes().ids == ["job:x"]


def test_deletes_appear_in_changes(store: Store) -> None:
    doc = store.create({"_id": "job:gone", "type": "job"})
    seq = store.changes().last_seq
    store.delete(doc["_id"], doc["_rev"])
    assert collect_changes(store, seq, want=1).ids == ["job:gone"]


def test_longpoll_returns_within_a_second_of_a_write(store: Store) -> None:
    store.create({"type": "job"})
    seq = store.changes().last_seq
    written: dict[str, float] = {}

    def write() -> None:
        time.sleep(0.3)
        written["at"] = time.monotonic()
        store.create({"_id": "job:late", "type": "job"})

    writer = threading.Thread(target=write)
    writer.start()
    page = store.changes(seq, timeout=20)
    returned = time.monotonic()
    writer.join(10)
    assert page.ids == ["job:late"]
    assert returned - written["at"] < 1.0
    assert page.last_seq != seq


def test_longpoll_without_writes_times_out_empty(store: Store) -> None:
    store.create({"type": "job"})
    seq = store.changes().last_seq
    began = time.monotonic()
    page = store.changes(seq, timeout=0.4)
    assert page.ids == []
    assert page.last_seq == seq
    assert time.monotonic() - began >= 0.3
    # The same sequence still works afterwards.
    store.create({"_id": "job:next", "type": "job"})
    assert collect_changes(store, page.last_seq, want=1).ids == ["job:next"]


def test_since_now_starts_at_the_end_of_the_feed(store: Store) -> None:
    store.create({"_id": "job:old", "type": "job"})
    now = store.changes("now")
    assert now.ids == []
    waited = store.changes("now", timeout=0.2)
    assert waited.ids == [] and waited.last_seq == now.last_seq
    store.create({"_id": "job:new", "type": "job"})
    assert collect_changes(store, now.last_seq, want=1).ids == ["job:new"]


def _create_in_child(store: Store) -> None:
    store.create({"_id": "job:forked", "type": "job"})
    store.get("job:forked")


def test_a_forked_child_can_use_an_inherited_store(store: Store) -> None:
    store.create({"_id": "job:parent", "type": "job"})  # opens connections before the fork
    assert store.changes().ids == ["job:parent"]
    child = multiprocessing.get_context("fork").Process(target=_create_in_child, args=(store,))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert store.get("job:forked")["type"] == "job"
    store.create({"_id": "job:parent2", "type": "job"})  # the parent's connections still work
    assert store.changes().ids == ["job:parent", "job:forked", "job:parent2"]


# Listing without views or _find ----------------------------------------------------------------


def test_list_one_owners_documents_of_one_type_newest_first_paginated(store: Store) -> None:
    mine = []
    for i in range(7):
        mine.append(store.create({"type": "training-job", "user-id": "user:ann", "i": i})["_id"])
        store.create({"type": "training-job", "user-id": "user:annie", "i": i})
        store.create({"type": "solver", "user-id": "user:ann", "i": i})
        time.sleep(0.002)  # ids sort by microsecond creation time
    store.create({"type": "training-job", "user-id": "user:an", "i": 99})
    gone = store.get(mine[3])
    store.delete(gone["_id"], gone["_rev"])
    kept = [doc_id for doc_id in mine if doc_id != gone["_id"]]

    newest_first = list(reversed(kept))
    pages = [store.list("training-job", "user:ann", limit=4, skip=skip) for skip in (0, 4, 8)]
    assert [d["_id"] for d in pages[0]] == newest_first[:4]
    assert [d["_id"] for d in pages[1]] == newest_first[4:]
    assert pages[2] == []
    assert all(d["user-id"] == "user:ann" and d["type"] == "training-job" for d in pages[0])
    assert [d["i"] for d in pages[0]] == [6, 5, 4, 2]

    oldest_first = store.list("training-job", "user:ann", newest_first=False)
    assert [d["_id"] for d in oldest_first] == kept
    assert len(store.list("training-job")) == 6 + 7 + 1
    assert len(list(store.iter_type("solver", page=3))) == 7
    assert store.list("training-job", "user:ann", limit=0) == []


def test_new_ids_sort_by_creation_time() -> None:
    ids = [new_id("dataset", "user:ann") for _ in range(50)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 50


# Bad URLs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "sqlite:",
        "sqlite://somehost/x.db",
        "sqlite:///tmp/",
        "ftp://example.com/db",
        "no-scheme-at-all",
        "http://",
        "http://127.0.0.1:5984",
        "http://127.0.0.1:5984/a/b",
        "http://127.0.0.1:notaport/db",
    ],
)
def test_malformed_url_is_a_store_error_naming_it(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert repr(url) in str(caught.value) or url in str(caught.value)


def test_unreachable_couch_url_is_a_store_error_naming_it() -> None:
    url = f"http://127.0.0.1:{free_port()}/nothing"
    began = time.monotonic()
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert url in str(caught.value)
    assert time.monotonic() - began < 10


def test_couch_errors_mask_the_password() -> None:
    url = f"http://bob:hunter2@127.0.0.1:{free_port()}/db"
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert "hunter2" not in str(caught.value)
    assert "bob:***@127.0.0.1" in str(caught.value)
    assert "connection refused" in str(caught.value)


def test_missing_sqlite_file_without_create(tmp_path) -> None:  # noqa: ANN001
    url = f"sqlite://{tmp_path / 'absent.db'}"
    with pytest.raises(StoreError) as caught:
        open_store(url, create=False)
    assert "absent.db" in str(caught.value)


def test_missing_couch_database_without_create(pouchdb_server: PouchDBServer) -> None:
    url = pouchdb_server.db_url("never-created")
    with pytest.raises(StoreError) as caught:
        open_store(url, create=False)
    assert url in str(caught.value)


def test_relative_sqlite_url(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:data/rel.db")
    try:
        store.create({"_id": "user:rel", "type": "user"})
    finally:
        store.close()
    assert (tmp_path / "data" / "rel.db").exists()


def test_ping(store: Store) -> None:
    store.ping()


# Backend-specific: other processes, server restarts ---------------------------------------------


def test_sqlite_write_from_another_process_wakes_a_waiting_changes(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    try:
        store.create({"type": "job"})
        seq = store.changes().last_seq
        child = textwrap.dedent(
            f"""
            import time
            from elasticthought.store import open_store
            store = open_store({sqlite_url!r})
            time.sleep(0.3)
            store.create({{"_id": "job:from-child", "type": "job"}})
            print(time.time(), flush=True)
            """
        )
        proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        try:
            page = store.changes(seq, timeout=30)
            returned = time.time()
            out, _ = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0
        assert page.ids == ["job:from-child"]
        assert returned - float(out.split()[-1]) < 1.0
    finally:
        store.close()


def test_couch_feed_and_reads_survive_a_server_restart(pouchdb_leveldb: PouchDBServer) -> None:
    url = pouchdb_leveldb.db_url("restart")
    store = open_store(url)
    writer = open_store(url)
    try:
        kept = store.create({"_id": "job:before", "type": "job"})
        seq = store.changes().last_seq

        # A longpoll is waiting while the server goes down and comes back.
        result: dict[str, object] = {}

        def follow() -> None:
            try:
                result["page"] = store.changes(seq, timeout=25)
            except BaseException as exc:  # noqa: BLE001 - reported below
                result["error"] = exc

        follower = threading.Thread(target=follow)
        follower.start()
        time.sleep(0.3)
        pouchdb_leveldb.stop()
        time.sleep(0.5)
        pouchdb_leveldb.start()
        assert store.get("job:before")["_rev"] == kept["_rev"]  # data outlived the restart
        writer.create({"_id": "job:after", "type": "job"})
        follower.join(30)
        assert "error" not in result, result
        page = result["page"]
        assert isinstance(page, Changes)
        assert page.ids == ["job:after"]

        # Reads made while the server is down wait for it to come back (bounded retry).
        pouchdb_leveldb.stop()
        restarter = threading.Timer(0.5, pouchdb_leveldb.start)
        restarter.start()
        try:
            assert store.get("job:after")["type"] == "job"
        finally:
            restarter.join(30)
        assert collect_changes(store, page.last_seq, want=0).ids == []
        assert store.changes(seq).ids == ["job:after"]
    finally:
        store.close()
        writer.close()


def test_couch_ping_reports_a_stopped_server(pouchdb_leveldb: PouchDBServer) -> None:
    store = open_store(pouchdb_leveldb.db_url("ping"))
    try:
        store.ping()
        pouchdb_leveldb.stop()
        with pytest.raises(StoreError) as caught:
            store.ping()
        assert pouchdb_leveldb.url in str(caught.value)
    finally:
        store.close()
