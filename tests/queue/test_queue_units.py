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
    assert reason == "waiting: no live worker offers engine 'caffe' and 1 GPU"
    assert pending_reason([], {"engine": None, "gpu": 0}) == "waiting: no live worker"
