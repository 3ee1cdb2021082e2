"""Resuming a training job on a later attempt: its newest complete snapshot, its log and its
metrics as the earlier attempt left them."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from elasticthought.blobs import layout
from elasticthought.jobs.training.prepare import download
from elasticthought.jobs.training.progress import Metrics
from elasticthought.queue.context import JobContext

log = logging.getLogger("elasticthought.engine")


def restore_log_and_metrics(ctx: JobContext, log_path: Path) -> Metrics:
    """The earlier attempts' log (kept, appended to) and metrics series."""
    log_key = layout.key(ctx.job_id, layout.LOG)
    if not log_path.exists() and ctx.blobs.exists(log_key):
        download(ctx, log_key, log_path)
    metrics = Metrics()
    metrics_key = layout.key(ctx.job_id, layout.METRICS)
    if ctx.blobs.exists(metrics_key):
        metrics.load(ctx.blobs.get(metrics_key))
    return metrics


def resume_point(ctx: JobContext, prefix: str) -> tuple[int, Path] | None:
    """The newest complete snapshot (blob store first, then the work dir) as a local
    .solverstate whose learned_net names the local .caffemodel; None when there is none."""
    from elasticthought.engine.caffemodel import read_solverstate, write_solverstate

    name = os.path.basename(prefix)
    found: dict[int, dict[str, str]] = {}
    for blob_key in ctx.blobs.list(layout.snapshots(ctx.job_id)):
        match = layout.SNAPSHOT_RE.match(blob_key.rsplit("/", 1)[-1])
        if match and match["name"] == name:
            found.setdefault(int(match["iter"]), {})[match["ext"]] = blob_key
    # A snapshot written to the work dir just before a kill may not have been uploaded.
    local: set[int] = set()
    for path in Path(prefix).parent.glob(f"{name}_iter_*.solverstate"):
        match = layout.SNAPSHOT_RE.match(path.name)
        if match and match["name"] == name and path.with_suffix(".caffemodel").is_file():
            local.add(int(match["iter"]))
    for iteration in sorted(set(found) | local, reverse=True):
        parts = found.get(iteration, {})
        if len(parts) != 2 and iteration not in local:
            continue
        model = Path(f"{prefix}_iter_{iteration}.caffemodel")
        state = Path(f"{prefix}_iter_{iteration}.solverstate")
        try:
            if len(parts) == 2:
                download(ctx, parts["caffemodel"], model)
                download(ctx, parts["solverstate"], state)
            message = read_solverstate(str(state))
            if not model.stat().st_size:
                raise ValueError(f"{model.name} is empty")
            message.learned_net = str(model)
            write_solverstate(message, str(state))
            if len(parts) != 2:  # keep the blob store complete: upload the local one
                for path in (model, state):
                    with path.open("rb") as f:
                        ctx.blobs.put(layout.snapshot(ctx.job_id, path.name), f)
        except Exception as exc:  # noqa: BLE001 - try an older snapshot
            log.warning("snapshot %d unusable: %s", iteration, exc)
            continue
        return iteration, state
    return None
