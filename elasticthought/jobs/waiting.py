"""Waiting inside a job for another document (a datafile, dataset or training job) to finish."""

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
