"""Worker presence: one heartbeat document per worker process (type "worker")."""

from __future__ import annotations

import os
import socket
import time

from elasticthought.store.base import Conflict, NotFound, Store, id_prefix

WORKER_TYPE = "worker"


def presence_id(worker_id: str) -> str:
    return id_prefix(WORKER_TYPE, "") + worker_id.replace(":", "~")


def heartbeat(
    store: Store,
    worker_id: str,
    capabilities: dict,
    threads: int,
    running: list[str],
    started_at: float,
    ttl: float,
    state: str = "running",
) -> dict:
    """Create or refresh this worker's presence document; alive until `last-seen + ttl`."""
    now = time.time()
    fields = {
        "type": WORKER_TYPE,
        "worker-id": worker_id,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "capabilities": capabilities,
        "threads": threads,
        "running": list(running),
        "state": state,
        "started-at": started_at,
        "last-seen": now,
        "alive-until": now + ttl,
    }
    doc_id = presence_id(worker_id)
    for _ in range(20):
        try:
            doc = store.get(doc_id)
        except NotFound:
            try:
                return store.create({"_id": doc_id, **fields})
            except Conflict:
                continue
        doc.update(fields)
        try:
            return store.update(doc)
        except (Conflict, NotFound):
            continue
    raise Conflict(f"presence document {doc_id} kept changing")


def remove(store: Store, worker_id: str) -> None:
    """Delete this worker's presence document (clean shutdown)."""
    doc_id = presence_id(worker_id)
    for _ in range(10):
        try:
            doc = store.get(doc_id)
            store.delete(doc_id, doc["_rev"])
            return
        except NotFound:
            return
        except Conflict:
            continue


def list_workers(store: Store, alive_only: bool = False) -> list[dict]:
    """Presence documents of workers, each with `alive` (heartbeat recent) added."""
    now = time.time()
    out = []
    for doc in store.list_prefix(id_prefix(WORKER_TYPE, "")):
        doc["alive"] = doc.get("state") != "stopped" and float(doc.get("alive-until") or 0) > now
        if doc["alive"] or not alive_only:
            out.append(doc)
    return out


def prune(store: Store, older_than: float = 3600.0) -> None:
    """Delete presence documents of workers not seen for `older_than` seconds."""
    now = time.time()
    for doc in list_workers(store):
        if not doc["alive"] and float(doc.get("last-seen") or 0) < now - older_than:
            try:
                store.delete(doc["_id"], doc["_rev"])
            except (Conflict, NotFound):
                pass
