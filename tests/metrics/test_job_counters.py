"""Job transitions recorded by the process that writes them (here: this test process, whose
metrics live in memory): claims, ends by state, returns to pending, durations and waits."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import REGISTRY

import tests.queue.runner  # noqa: F401 - registers the queue-test runner
from elasticthought.queue import control
from elasticthought.queue.registry import CANCELED, FINISHED, PENDING
from elasticthought.store import open_store
from tests.queue.runner import TEST_TYPE

LABELS = {"type": TEST_TYPE, "engine": "any", "gpu": "false"}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {**LABELS, **labels}) or 0.0


def test_transitions_are_counted_once_each(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    before = {
        "started": value("elasticthought_jobs_started_total"),
        "finished": value("elasticthought_jobs_ended_total", state=FINISHED),
        "canceled": value("elasticthought_jobs_ended_total", state=CANCELED),
        "shutdown": value("elasticthought_jobs_requeued_total", reason="shutdown"),
        "expired": value("elasticthought_jobs_requeued_total", reason="lease_expired"),
        "waits": value("elasticthought_job_queue_wait_seconds_count"),
        "wait_sum": value("elasticthought_job_queue_wait_seconds_sum"),
        "durations": value("elasticthought_job_duration_seconds_count", state=FINISHED),
    }

    def new_job() -> str:
        doc = {"type": TEST_TYPE, "user-id": "user:a", "processing-state": PENDING,
               "created-at": time.time() - 2.0}  # fmt: skip
        return store.create(doc)["_id"]

    # A pending job canceled by the API: one canceled end, no claim.
    control.request_cancel(store, new_job())
    # Claimed, given back on shutdown, claimed again, finished.
    job = new_job()
    first = control.claim(store, job, "w/0", 30)
    control.release(store, job, first["claim-id"], {})
    second = control.claim(store, job, "w/0", 30)
    assert control.finish(store, job, second["claim-id"], FINISHED, {}) is not None
    assert control.finish(store, job, second["claim-id"], FINISHED, {}) is None  # fenced: no count
    # Claimed by a worker that vanished: its lease expires, back to pending.
    lost = new_job()
    control.claim(store, lost, "gone/0", -1)
    assert control.recover_expired(store, lost, 3)["processing-state"] == PENDING

    def delta(key: str, name: str, **labels: str) -> float:
        return value(name, **labels) - before[key]

    assert delta("started", "elasticthought_jobs_started_total") == 3
    assert delta("finished", "elasticthought_jobs_ended_total", state=FINISHED) == 1
    assert delta("canceled", "elasticthought_jobs_ended_total", state=CANCELED) == 1
    assert delta("shutdown", "elasticthought_jobs_requeued_total", reason="shutdown") == 1
    assert delta("expired", "elasticthought_jobs_requeued_total", reason="lease_expired") == 1
    # Queue waits: first claims only (the released job's attempts went back to 0, so its second
    # claim is a first attempt again).
    assert delta("waits", "elasticthought_job_queue_wait_seconds_count") == 3
    # Each waited at least the 2 s since its created-at.
    assert delta("wait_sum", "elasticthought_job_queue_wait_seconds_sum") >= 6.0
    assert delta("durations", "elasticthought_job_duration_seconds_count", state=FINISHED) == 1
    store.close()
