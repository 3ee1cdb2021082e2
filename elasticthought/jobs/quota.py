"""Storing a job's output file within its owner's stored-bytes quota (`storage_quota`): a
dataset's split archives, a training job's snapshots and final model. Past the quota the job
fails naming it, before the file is stored."""

from __future__ import annotations

from pathlib import Path

from elasticthought.documents.errors import JobError
from elasticthought.documents.fields import USER_ID
from elasticthought.queue.context import JobContext
from elasticthought.storage_quota import QuotaExceeded, check_stored_bytes


def put_file(ctx: JobContext, key: str, path: Path, what: str) -> None:
    """Store the file `path` as blob `key`, unless it would take the job's owner past their
    stored-bytes quota (then `JobError` naming the flag and the numbers; `what` says what was
    being stored). A blob that `key` replaces does not count."""
    limit = int(ctx.config.max_stored_bytes_per_user or 0)
    try:
        check_stored_bytes(
            ctx.blobs, ctx.job[USER_ID], limit, path.stat().st_size, what, ignore=(key,)
        )
    except QuotaExceeded as exc:
        raise JobError(str(exc)) from None
    with path.open("rb") as f:
        ctx.blobs.put(key, f)
