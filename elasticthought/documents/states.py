"""The states of a job document (`processing-state`): the only place they are spelled."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    """A job's `processing-state`; a `str`, so it is stored and compared as its text."""

    PENDING = "pending"
    PROCESSING = "processing"
    FINISHED = "finished_successfully"
    FAILED = "failed"
    CANCELED = "canceled"


PENDING = State.PENDING
PROCESSING = State.PROCESSING
FINISHED = State.FINISHED
FAILED = State.FAILED
CANCELED = State.CANCELED
#: States a job never leaves.
FINAL_STATES = frozenset({FINISHED, FAILED, CANCELED})
#: States of an input (datafile, dataset) that nothing can be built from.
UNUSABLE = (FAILED, CANCELED)
#: States of a job that still runs or will run.
ACTIVE = (PENDING, PROCESSING)
