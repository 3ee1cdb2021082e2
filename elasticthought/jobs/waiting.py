"""The jobs a job needs finished first, and waiting inside a job for one to finish.

Workers leave a job pending while the jobs `*_dependencies` name are pending or processing
(registered with the runners, see `queue.registry`); `wait_finished` still covers a job started
before its worker saw them (e.g. right after the worker started)."""

from __future__ import annotations

import time

from elasticthought.documents import JobError
from elasticthought.documents.fields import PROCESSING_LOG, PROCESSING_STATE
from elasticthought.documents.states import FINAL_STATES, FINISHED
from elasticthought.queue.context import JobContext
from elasticthought.store.base import NotFound


def wait_finished(ctx: JobContext, doc_id: str, what: str, timeout: float) -> dict:
    """Document `doc_id` (a `what`, for messages) once it finished processing; a document
    without a state counts as finished. Fails when it failed, vanished, the job was canceled
    or `timeout` seconds passed."""
    deadline = time.monotonic() + timeout
    delay = 0.2
    while True:
        try:
            doc = ctx.store.get(doc_id)
        except NotFound:
            raise JobError(f"{what} {doc_id} no longer exists") from None
        state = doc.get(PROCESSING_STATE, FINISHED)
        if state == FINISHED:
            return doc
        if state in FINAL_STATES:
            reason = doc.get(PROCESSING_LOG) or state
            raise JobError(f"{what} {doc_id} is {state}: {reason}"[:2000])
        if ctx.cancelled():
            raise JobError("canceled while waiting")
        if time.monotonic() > deadline:
            raise JobError(f"{what} {doc_id} did not finish in time (state {state})")
        ctx.progress(step=f"waiting for {what} {doc_id}")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def dataset_dependencies(doc: dict) -> list[tuple[str, str]]:
    """A dataset waits for its datafiles."""
    ids = [(doc.get(side) or {}).get("datafile-id") for side in ("training", "testing")]
    return [("datafile", i) for i in dict.fromkeys(i for i in ids if isinstance(i, str))]


def training_dependencies(doc: dict) -> list[tuple[str, str]]:
    """A training job waits for its dataset and for the training job it takes weights from."""
    deps = []
    if isinstance(doc.get("dataset-id"), str):
        deps.append(("dataset", doc["dataset-id"]))
    weights = doc.get("weights")
    if isinstance(weights, dict) and isinstance(weights.get("training-job-id"), str):
        deps.append(("training job", weights["training-job-id"]))
    return deps
