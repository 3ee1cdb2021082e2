"""The job document model: states as stored, constructors, submit(), the child's forbidden
fields, and the blob layout (one place for every key)."""

from __future__ import annotations

import json

import pytest

from elasticthought.blobs import layout
from elasticthought.documents import fields, model, status
from elasticthought.documents.states import FINAL_STATES, PENDING, State
from elasticthought.store import open_store


def test_states_are_stored_as_their_text():
    assert [s.value for s in State] == [
        "pending", "processing", "finished_successfully", "failed", "canceled",
    ]  # fmt: skip
    assert json.loads(json.dumps({"s": State.FINISHED})) == {"s": "finished_successfully"}
    assert State.CANCELED == "canceled" and f"{State.FAILED}" == "failed"
    assert PENDING not in FINAL_STATES


def test_every_job_constructor_makes_a_pending_job_that_submit_stores(tmp_path):
    store = open_store(f"sqlite:{tmp_path}/s.db")
    try:
        owner = "user:ann"
        jobs = [
            model.datafile(owner, "datafile:ann:1", "DATA", {"backend": "LMDB"}, "k", url="u"),
            model.dataset(owner, {"datafile-id": "d"}, {"datafile-id": "d"}, False, "DATA"),
            model.training_job(
                owner, "training-job:ann:1", "solver:x", "dataset:y", "torch", False, 0
            ),
            model.classify_job(owner, "classify-job:ann:1", {"_id": "classifier:c"}, [], "rich"),
        ]
        for doc in jobs:
            stored = model.submit(store, doc)
            assert stored[fields.PROCESSING_STATE] == "pending"
            assert stored[fields.PROCESSING_LOG] == ""
            assert stored[fields.USER_ID] == owner
            assert store.get(stored["_id"])[fields.TYPE] == doc[fields.TYPE]
        assert jobs[3][fields.ENGINE] == "torch"  # a classifier without an engine
        with pytest.raises(ValueError, match="not a new job"):
            model.submit(store, model.solver(owner, "dataset:y", {}, "DATA"))
    finally:
        store.close()


def test_a_childs_report_cannot_touch_the_queues_fields():
    report = {f: "x" for f in status.RESERVED} | {status.LOSS: 0.5, status.STEP: "training"}
    assert status.writable(report) == {status.LOSS: 0.5, status.STEP: "training"}
    assert fields.PROCESSING_STATE in status.RESERVED
    assert not set(status.STATUS_KEYS) & (status.RESERVED - {fields.ATTEMPTS, fields.STARTED_AT,
                                                             fields.FINISHED_AT,
                                                             fields.CANCEL_REQUESTED})  # fmt: skip


def test_blob_layout():
    job = "training-job:user~ann:0005f"
    assert layout.prefix(job) == "training-job/user~ann/0005f/"
    assert layout.model(job) == "training-job/user~ann/0005f/model.caffemodel"
    assert layout.snapshot(job, "x_iter_5.solverstate").endswith("/snapshots/x_iter_5.solverstate")
    assert layout.image("classify-job:a:1", 7) == "classify-job/a/1/images/00007"
    assert layout.SNAPSHOT_RE.match("lenet_iter_100.caffemodel")["iter"] == "100"
    assert layout.SNAPSHOT_RE.match("lenet_iter_100.txt") is None
