"""Preparing a training run: the inputs it waits for, the files it trains from."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from elasticthought.blobs import layout
from elasticthought.documents.errors import JobError
from elasticthought.jobs import workspace
from elasticthought.jobs.waiting import wait_finished
from elasticthought.queue.context import JobContext

log = logging.getLogger("elasticthought.engine")

WAIT_SECONDS = 3600.0  # how long a training job waits for its dataset or source job


def download(ctx: JobContext, blob_key: str, path: Path) -> Path:
    """A blob copied to a local file (atomically)."""
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as f:
        for chunk in ctx.blobs.iter_chunks(blob_key):
            f.write(chunk)
    os.replace(tmp, path)
    return path


def _snapshot_name(solver: Any) -> str:
    base = os.path.basename(solver.snapshot_prefix.rstrip("/")) if solver.snapshot_prefix else ""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")
    if not base or base.startswith("will_be_replaced"):
        return "snapshot"
    return base


def _mean_for(net: Any, space: workspace.Workspace) -> str | None:
    """The dataset's mean file when the net's data layers subtract a mean file."""
    from elasticthought.engine.rewrite import data_layers

    wants = any(layer.transform_param.HasField("mean_file") for layer, _ in data_layers(net))
    if not wants:
        return None
    if space.mean_file is None:
        raise JobError(
            "the net's transform_param uses a mean_file but the dataset has none: "
            'create the dataset with "compute-mean": true'
        )
    return space.mean_file


def check_memory(files: Any) -> None:
    """Refuse at once, before any net is built, nets whose blobs alone can never fit the job
    memory limit (`engine.memory`'s lower bound against the limit this process runs under)."""
    from elasticthought.engine.memory import describe, solver_needs
    from elasticthought.queue.limits import job_memory_bytes, limit_text

    limit = job_memory_bytes()
    if limit <= 0:
        return
    try:
        needs = solver_needs(files.solver, files.net)
    except Exception:  # noqa: BLE001 - no estimate: the net builds (and fails) as usual
        log.debug("no memory estimate", exc_info=True)
        return
    if sum(n.bytes for n in needs) > limit:
        raise JobError(f"the nets need {describe(needs)}, more than {limit_text(limit)}")


def rewrite(ctx: JobContext, solver_doc: dict, space: workspace.Workspace) -> Any:
    """The solver and net rewritten for this job (sources, backend, mean file, snapshot
    prefix, solver mode), written to the work dir and kept in the blob store."""
    from elasticthought.engine.errors import FormatError
    from elasticthought.engine.file_fields import named_files_in_net, named_files_in_solver
    from elasticthought.engine.prototxt import parse_net, parse_solver
    from elasticthought.engine.rewrite import rewrite_for_job

    try:
        solver = parse_solver(solver_doc["specification"])
        net = parse_net(solver_doc["specification-net"])
        # the API refuses these; a document written some other way is refused here
        named = named_files_in_solver(solver) + named_files_in_net(net)
        if named:
            raise JobError("; ".join(n.describe() for n in named))
        mean = _mean_for(net, space)
        files = rewrite_for_job(
            solver,
            net,
            ctx.work_dir,
            space.sources,
            backend=space.backend,
            mean_file=mean,
            snapshot_name=_snapshot_name(solver),
            solver_mode="GPU" if ctx.gpus else "CPU",
            device_id=0 if ctx.gpus else None,
        )
    except FormatError as exc:
        raise JobError(f"cannot prepare the solver: {exc}") from None
    for name, path in ((layout.SOLVER, files.solver_path), (layout.NET, files.net_path)):
        ctx.blobs.put(layout.key(ctx.job_id, name), path.read_bytes())
    return files


def describe_sources(files: Any) -> None:
    """Log where each data layer of the rewritten net reads (and, for Data, the backend)."""
    from elasticthought.engine.proto import caffe_pb2
    from elasticthought.engine.rewrite import SOURCE_PARAMS, data_layers

    for layer, phases in data_layers(files.net):
        param = getattr(layer, SOURCE_PARAMS[layer.type])
        kind = ""
        if layer.type == "Data":
            kind = f" (backend: {caffe_pb2.DataParameter.DB.Name(param.backend)})"
        log.info("%s layer %s (%s) reads %s%s", layer.type, layer.name,
                 "/".join(sorted(phases)), param.source, kind)  # fmt: skip


def weights(ctx: JobContext) -> Path | None:
    """The fine-tuning weights as a local file, or None."""
    spec = ctx.job.get("weights")
    if not spec:
        return None
    path = ctx.work_dir / layout.WEIGHTS
    if isinstance(spec, dict) and spec.get("training-job-id"):
        source = wait_finished(ctx, spec["training-job-id"], "training job", WAIT_SECONDS)
        model = source.get("trained-model")
        if not model:
            raise JobError(f"training job {spec['training-job-id']} has no trained model")
        return download(ctx, model, path)
    blob_key = layout.key(ctx.job_id, layout.WEIGHTS)
    if isinstance(spec, dict) and spec.get("url") and not ctx.blobs.exists(blob_key):
        from elasticthought.fetch import FetchError, FetchPolicy, open_url

        ctx.progress(step="downloading weights")
        try:
            chunks, _ = open_url(spec["url"], FetchPolicy.from_config(ctx.config))
            ctx.blobs.put(blob_key, chunks)
        except FetchError as exc:
            raise JobError(f"weights download failed: {exc}") from None
    if not ctx.blobs.exists(blob_key):
        raise JobError("the fine-tuning weights are missing from the blob store")
    return download(ctx, blob_key, path)
