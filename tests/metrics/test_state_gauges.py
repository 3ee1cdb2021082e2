"""Gauges of shared state computed from the store (the API process's view): jobs by type,
state, engine and GPU need, the queue depth, training speed, workers, the scaling signal."""

from __future__ import annotations

import time
from pathlib import Path

from elasticthought.config import config_from_env
from elasticthought.metrics.state import ScalingSignal, StateCollector
from elasticthought.queue import presence
from elasticthought.queue.registry import FINISHED, PENDING, PROCESSING
from elasticthought.store import Store


def gauges(signal: ScalingSignal) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for family in StateCollector(signal).collect():
        out[family.name] = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    return out


def test_gauges_follow_the_store(store: Store, tmp_path: Path) -> None:
    url = store.url  # both backends: the embedded SQLite file and PouchDB Server

    def job(doc_type: str, state: str, **fields) -> str:
        doc = {"type": doc_type, "user-id": "user:alice", "processing-state": state, **fields}
        return store.create(doc)["_id"]

    for _ in range(3):
        job("datafile", PENDING)
    job("training-job", PENDING, gpu=True)
    job("training-job", PROCESSING, engine="caffe", **{"iter-per-s": 12.5})
    job("training-job", PROCESSING, **{"iter-per-s": 4.0})
    job("training-job", FINISHED, **{"iter-per-s": 99.0})
    presence.heartbeat(store, "w1", {"engines": ["torch", "caffe"], "gpus": []}, 2,
                       ["training-job:user~alice:x"], time.time(), ttl=60)  # fmt: skip
    config = config_from_env(
        store=url, data_dir=str(tmp_path), runner_modules="elasticthought.jobs",
        scale_slots_per_worker=2, scale_max_workers=10, scale_cooldown_seconds=0,
    )  # fmt: skip
    signal = ScalingSignal(config, store)
    try:
        g = gauges(signal)
        jobs = g["elasticthought_jobs"]
        labels = (("engine", "any"), ("gpu", "false"), ("state", PENDING), ("type", "datafile"))
        assert jobs[labels] == 3
        gpu = (("engine", "torch"), ("gpu", "true"), ("state", PENDING), ("type", "training-job"))
        assert jobs[gpu] == 1
        assert sum(jobs.values()) == 6  # the finished job is not counted
        assert g["elasticthought_queue_depth"] == {(): 4}
        assert g["elasticthought_training_iterations_per_second"] == {
            (("engine", "caffe"),): 12.5,
            (("engine", "torch"),): 4.0,
        }
        assert g["elasticthought_workers"][(("engine", "caffe"), ("gpu", "false"))] == 1
        assert g["elasticthought_worker_slots_free"][(("engine", "torch"), ("gpu", "false"))] == 1
        wanted = g["elasticthought_scaling_recommended_workers"]
        assert wanted[(("engine", "all"), ("gpu", "false"))] == 3  # ceil((2 + 3) / 2)
        assert wanted[(("engine", "all"), ("gpu", "true"))] == 1
        # A new pending job shows up at the next scrape (the follower reads the feed).
        job("datafile", PENDING)
        deadline = time.monotonic() + 10
        while gauges(signal)["elasticthought_queue_depth"] != {(): 5}:
            assert time.monotonic() < deadline, "the new job never counted"
            time.sleep(0.05)
        text = str(gauges(signal))
        assert "alice" not in text
    finally:
        signal.close()
