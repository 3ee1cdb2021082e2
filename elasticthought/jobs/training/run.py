"""The training job from start to end (runs in the job's child process).

Steps: `prepare` (wait for the dataset, fetch it, rewrite solver and net, fine-tuning weights);
`resume` (the newest snapshot of an earlier attempt); train on the job's engine, chosen
through `engine.registry`, with `progress` streaming into the job document and the blob
store; save the final model; evaluate it once on the whole test split; record what a
classifier needs (the TEST-phase transform of `engine.transform`).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from elasticthought.blobs import layout
from elasticthought.documents import status as st
from elasticthought.documents.errors import JobError
from elasticthought.documents.fields import ENGINE, GPU, LAYERS_TYPE
from elasticthought.documents.states import CANCELED
from elasticthought.engine.interface import EngineError, EvaluationError, TrainRun
from elasticthought.engine.registry import DEFAULT_ENGINE, UnknownEngine, get_engine
from elasticthought.jobs import quota, workspace
from elasticthought.jobs.training import prepare, resume
from elasticthought.jobs.training.progress import Recorder, Uploader
from elasticthought.jobs.waiting import wait_finished
from elasticthought.queue.context import JobContext
from elasticthought.store.base import NotFound

log = logging.getLogger("elasticthought.engine")


def requirements(doc: dict) -> dict:
    """What a worker must offer: the job's engine (the default one when unset) and its GPUs."""
    return {"engine": doc.get(ENGINE) or DEFAULT_ENGINE, "gpu": doc.get(GPU, False)}


def record_for_classifier(files: Any, mean_key: str | None) -> dict[str, Any]:
    """The TEST-phase input the classifier must reproduce: transform and input shape."""
    from elasticthought.engine.transform import test_layer, transform_of

    layer = test_layer(files.net)
    transform = transform_of(layer)
    if "mean_file" in transform:
        transform["mean_file"] = mean_key
    return {"transform": transform, "data-layer": layer.name, "data-layer-type": layer.type}


def clean(work_dir: Path) -> None:
    """Empty the work dir of a finished job: everything it made is in the blob store."""
    for child in work_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _evaluate(ctx: JobContext, engine: Any, files: Any, final: Path, count: int) -> dict | None:
    """The final model's evaluation (`{"error": ...}` when it cannot be evaluated); None when
    the job was canceled meanwhile."""
    log.info("Evaluating %s on the %d test records", final.name, count)
    try:
        evaluation = engine.evaluate(
            str(files.net_path), str(final), count, bool(ctx.gpus), cancel_check=ctx.cancelled
        )
        log.info("Evaluation: accuracy = %.6g (%d of %d)", evaluation["accuracy"],
                 evaluation["correct"], evaluation["count"])  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the model is trained; evaluation is extra
        if ctx.cancelled():
            return None
        reason = str(exc)
        if not isinstance(exc, EvaluationError):
            reason = f"{type(exc).__name__}: {reason}"
        evaluation = {"error": reason}
        log.warning("Evaluation skipped: %s", reason)
    return evaluation


def run(ctx: JobContext) -> dict[str, Any]:
    from elasticthought.engine.torch import glog

    job = ctx.job
    name = job.get(ENGINE) or DEFAULT_ENGINE
    try:
        engine = get_engine(name, ctx.config)
    except UnknownEngine:
        raise JobError(f"unknown engine {name!r} (torch or caffe)") from None
    except ImportError as exc:
        raise JobError(f"engine {name!r} is not available in this build: {exc}") from None
    try:
        solver_doc = ctx.store.get(job["solver-id"])
    except NotFound:
        raise JobError(f"solver {job['solver-id']} no longer exists") from None
    dataset = wait_finished(ctx, solver_doc["dataset-id"], "dataset", prepare.WAIT_SECONDS)
    space = workspace.prepare(ctx, dataset)
    files = prepare.rewrite(ctx, solver_doc, space)
    prepare.check_memory(files)
    weights = prepare.weights(ctx)
    # An earlier attempt (lease lost, or released at shutdown) left its log, metrics and
    # snapshots: keep the log, continue from the newest snapshot.
    log_path = ctx.work_dir / layout.LOG
    metrics = resume.restore_log_and_metrics(ctx, log_path)
    resume_from = None
    start_iter = 0
    point = resume.resume_point(ctx, files.snapshot_prefix)
    if point is not None:
        start_iter, resume_from = point
    metrics.truncate(start_iter)
    max_iter = int(files.solver.max_iter)
    recorder = Recorder(ctx, metrics, max_iter, start_iter)
    fields: dict[str, Any] = {
        ENGINE: name,
        st.ENGINE_VERSION: engine.version(),
        st.MAX_ITERATIONS: max_iter,
        "labels": dataset.get("labels") or [],
        st.STEP: "training",
    }
    if resume_from is not None:
        fields[st.RESUMED_FROM] = start_iter
    ctx.progress(**fields)
    started = time.time()
    with glog.capture(str(log_path)), Uploader(ctx, log_path, metrics):
        prepare.describe_sources(files)
        if resume_from is not None:
            log.info("Attempt %d resumes from the snapshot of iteration %d", ctx.attempt,
                     start_iter)  # fmt: skip
        elif log_path.stat().st_size if log_path.exists() else 0:
            log.info("Attempt %d starts from iteration 0 (no snapshot yet)", ctx.attempt)
        training = TrainRun(
            solver_path=files.solver_path,
            work_dir=ctx.work_dir,
            log_path=log_path,
            snapshot_prefix=files.snapshot_prefix,
            callback=recorder,
            on_iteration=recorder.tick,
            cancel_check=ctx.cancelled,
            weights=weights,
            resume=resume_from,
            gpu=bool(ctx.gpus),
        )
        try:
            final = engine.train(training)
        except EngineError as exc:
            raise JobError(str(exc)) from None
        if final is None:
            return {st.STEP: CANCELED}
        model_key = layout.model(ctx.job_id)
        quota.put_file(ctx, model_key, Path(final), "storing the trained model")
        seconds = time.time() - started
        ctx.progress(**{st.STEP: "evaluating", st.TRAINED_MODEL: model_key})
        evaluation = _evaluate(ctx, engine, files, final, space.counts["TEST"])
        if evaluation is None:
            return {st.STEP: CANCELED}
    artifacts = dataset.get("artifacts") or {}
    classifier = record_for_classifier(files, artifacts.get("mean"))
    clean(ctx.work_dir)
    return {
        st.STEP: "done",
        ENGINE: name,
        st.ENGINE_VERSION: fields[st.ENGINE_VERSION],
        st.TRAINED_MODEL: model_key,
        "trained-model-url": f"/training-jobs/{ctx.job_id}/model",
        "labels": dataset.get("labels") or [],
        LAYERS_TYPE: dataset.get(LAYERS_TYPE),
        "dataset-id": dataset["_id"],
        "net": layout.key(ctx.job_id, layout.NET),
        "solver": layout.key(ctx.job_id, layout.SOLVER),
        st.SNAPSHOTS: recorder.snapshots,
        st.EVALUATION: evaluation,
        st.LAST_ITERATION: recorder.last_iteration,
        st.MAX_ITERATIONS: max_iter,
        st.ITERATIONS_TRAINED: recorder.trained(recorder.last_iteration),
        "training-seconds": round(seconds, 3),
        "input-shape": evaluation.pop("input-shape", None),
        **classifier,
    }
