"""What a job's runner writes into its document and what the API reads back, defined once.

The training runner reports the fields named here (through `JobContext.progress` and its
result); `GET /training-jobs/{id}/status` answers `state` plus `STATUS_KEYS`; the metrics blob
holds `{"train": {TRAIN_COLUMNS..., "outputs": {...}}, "test": {TEST_COLUMNS..., "outputs"}}`.
`RESERVED` are the queue's bookkeeping fields: a job's child may never write them.
"""

from __future__ import annotations

from elasticthought.documents import fields as f

# Training progress, written by the runner --------------------------------------------------
STEP = "step"
LOSS = "loss"
LR = "lr"
LAST_ITERATION = "last-iteration"
MAX_ITERATIONS = "max-iterations"
ITER_PER_S = "iter-per-s"
TRAIN_OUTPUTS = "train-outputs"
TEST_OUTPUTS = "test-outputs"
ITERATIONS_TRAINED = "iterations-trained"
PROGRESS_AT = "progress-at"
SNAPSHOTS = "snapshots"
EVALUATION = "evaluation"
ENGINE_VERSION = "engine-version"
RESUMED_FROM = "resumed-from-iteration"
TRAINED_MODEL = "trained-model"
PENDING_REASON = "pending-reason"

#: What `GET /training-jobs/{id}/status` shows besides `id`, `state`, `logs`, `eta-seconds`.
STATUS_KEYS = (
    LOSS, LR, LAST_ITERATION, MAX_ITERATIONS, ITER_PER_S, TEST_OUTPUTS,
    EVALUATION, f.ENGINE, f.ATTEMPTS, RESUMED_FROM, ITERATIONS_TRAINED,
    f.STARTED_AT, f.FINISHED_AT, STEP, f.PROCESSING_LOG, PENDING_REASON, f.CANCEL_REQUESTED,
    ENGINE_VERSION,
)  # fmt: skip

# The metrics series (columns ready to plot) -------------------------------------------------
TRAIN_COLUMNS = ("iteration", "loss", "lr")
TEST_COLUMNS = ("iteration", "net")
OUTPUTS = "outputs"

#: Fields the child may not overwrite through progress() or its result: the queue owns them.
RESERVED = frozenset(
    {
        f.ID,
        f.REV,
        f.TYPE,
        f.USER_ID,
        f.PROCESSING_STATE,
        f.WORKER_ID,
        f.CLAIM_ID,
        f.LEASE_EXPIRES,
        f.ATTEMPTS,
        f.CANCEL_REQUESTED,
        f.STARTED_AT,
        f.FINISHED_AT,
        f.CREATED_AT,
    }
)

#: The run fields a worker sets when it claims a job and clears when it lets go of it.
RUN_FIELDS = (f.WORKER_ID, f.LEASE_EXPIRES, f.CLAIM_ID)


def writable(fields: dict) -> dict:
    """`fields` without the reserved ones (what a child's report may change)."""
    return {k: v for k, v in fields.items() if k not in RESERVED}
