"""The queue's pure parts: runner registry, requirements, fair order, pending reasons."""

from __future__ import annotations

import pytest

from elasticthought.queue.capabilities import missing, pending_reason
from elasticthought.queue.fairness import fair_order
from elasticthought.queue.registry import (
    RUNNERS,
    load_target,
    normalize_requirements,
    register_runner,
    unregister_runner,
)


def _jobs(owner: str, count: int, start: float, **extra) -> list[dict]:
    return [
        {"_id": f"{owner}{n:02d}", "user-id": owner, "created-at": start + n, **extra}
        for n in range(count)
    ]


def test_owners_alternate_and_keep_submission_order() -> None:
    order = [d["_id"] for d in fair_order(_jobs("a", 4, 0) + _jobs("b", 2, 100))]
    assert order == ["a00", "b00", "a01", "b01", "a02", "a03"]


def test_running_and_recent_starts_shift_the_turn() -> None:
    pending = _jobs("a", 2, 0) + _jobs("b", 2, 100)
    assert fair_order(pending, running={"a": 1})[0]["_id"] == "b00"
    assert fair_order(pending, last_started={"a": 50.0, "b": 60.0})[0]["_id"] == "a00"
    assert fair_order(pending, last_started={"a": 70.0, "b": 60.0})[0]["_id"] == "b00"


def test_priority_orders_only_the_owners_own_jobs() -> None:
    """A huge priority never jumps ahead of another user's turn (attack: priority 1e9)."""
    pending = (
        _jobs("a", 3, 0)
        + _jobs("b", 2, 100, priority=10**9)
        + [{"_id": "a99", "user-id": "a", "created-at": 500, "priority": 5}]
    )
    order = [d["_id"] for d in fair_order(pending)]
    assert order == ["a99", "b00", "a00", "b01", "a01", "a02"]


def test_register_runner_checks_the_target() -> None:
    with pytest.raises(ValueError, match="module:function"):
        register_runner("x-job", "no-colon")
    runner = register_runner("x-job", "tests.queue.runner:run_test_job")
    try:
        assert RUNNERS["x-job"] is runner
        assert load_target(runner.target).__name__ == "run_test_job"
        assert runner.needs({"engine": "caffe", "gpu": True}) == {"engine": "caffe", "gpu": 1}
    finally:
        unregister_runner("x-job")
    custom = register_runner("y-job", "m:f", requirements=lambda d: {"gpu": d["gpus"]})
    try:
        assert custom.needs({"gpus": 3}) == {"engine": None, "gpu": 3}
    finally:
        unregister_runner("y-job")


def test_requirements_and_reasons() -> None:
    assert normalize_requirements({"gpu": False}) == {"engine": None, "gpu": 0}
    cpu = {"engines": ["torch"], "gpus": []}
    gpu = {"engines": ["torch", "caffe"], "gpus": [0]}
    assert missing(cpu, {"engine": "torch", "gpu": 0}) is None
    assert missing(cpu, {"engine": "caffe", "gpu": 0}) == "engine 'caffe'"
    assert missing(gpu, {"engine": None, "gpu": 2}) == "2 GPUs"
    assert pending_reason([cpu, gpu], {"engine": "caffe", "gpu": 1}) is None
    reason = pending_reason([cpu], {"engine": "caffe", "gpu": 1})
    assert reason == "no live worker can run it: none offers engine 'caffe' and 1 GPU"
    assert pending_reason([], {"engine": None, "gpu": 0}) == "no worker is running"


def _job(n: int, owner: str, **fields: object) -> dict:
    return {
        "_id": f"reason-job:{owner}:{n:04d}",
        "type": "reason-job",
        "user-id": owner,
        "processing-state": "pending",
        "created-at": float(n),
        **fields,
    }


def test_every_pending_job_gets_one_reason() -> None:
    """Dependencies first, then workers, capabilities, the running cap, then the turn (with
    the jobs ahead split into other users' turns and the owner's own)."""
    from elasticthought.queue.pool import JobIndex
    from elasticthought.queue.reasons import QueueView

    register_runner(
        "reason-job",
        "tests.queue.runner:run_test_job",
        dependencies=lambda d: [("dataset", d["after"])] if d.get("after") else [],
    )
    try:
        index = JobIndex()
        running = [_job(n, "a", **{"processing-state": "processing"}) for n in (1, 2)]
        waiting = [_job(3, "a"), _job(4, "b"), _job(5, "b"), _job(6, "c")]
        child = _job(7, "c", after=waiting[1]["_id"])
        for doc in [*running, *waiting, child]:
            index.apply(doc["_id"], doc)
        cpu = [{"capabilities": {"engines": ["torch"], "gpus": []}}]
        view = QueueView(index, cpu, cap=2)
        assert view.reason(waiting[0]) == (
            "waiting: you have 2 jobs running, the most allowed (--max-running-jobs-per-user)"
        )
        assert view.reason(waiting[1]) == "waiting for a free worker (next in line)"
        assert view.reason(waiting[3]) == (
            "waiting for a free worker (1 job ahead of it: 1 of other users, whose turn "
            "comes first)"
        )
        assert view.reason(waiting[2]) == (
            "waiting for a free worker (2 jobs ahead of it: 1 of other users, whose turn "
            "comes first; 1 of yours, of higher priority or submitted earlier)"
        )
        assert view.reason(child) == f"waiting for dataset {waiting[1]['_id']} to finish"
        gpu_job = _job(8, "d", gpu=2)
        assert view.reason(gpu_job) == "no live worker can run it: none offers 2 GPUs"
        assert QueueView(index, [], cap=2).reason(waiting[1]) == "no worker is running"
        assert (
            QueueView(index, cpu, cap=0)
            .reason(waiting[0])
            .startswith("waiting for a free worker (")
        )
        assert view.reason(running[0]) is None
    finally:
        unregister_runner("reason-job")
