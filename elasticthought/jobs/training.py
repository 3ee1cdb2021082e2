"""The training-job runner (runs in the job's child process).

Steps: wait for the solver's dataset; fetch its splits into the work directory (`workspace`);
rewrite the solver and net for this job (data sources, the dataset's database backend, mean
file, snapshot prefix, solver mode); train with the job's engine (torch, or real Caffe); stream
progress into the job document; keep the log, the metrics series and every snapshot in the blob
store (uploaded while training, so any node can serve them); save the final model; evaluate it
once on the whole test split (`evaluate`). A later attempt (after a lost lease) resumes from the
newest snapshot; `weights` fine-tunes from another model.

Blob keys, under the job's prefix (`training-job/<owner>/<key>/`): `train.log`, `metrics.json`,
`solver.prototxt`, `net.prototxt` (as rewritten), `weights.caffemodel` (a fine-tuning input
given by URL or upload), `snapshots/<name>_iter_<N>.caffemodel|.solverstate`,
`model.caffemodel` (the final weights).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from elasticthought.jobs import layout, workspace
from elasticthought.jobs.engine_version import engine_version
from elasticthought.metrics import hooks as metric_hooks
from elasticthought.queue.registry import FINAL_STATES, FINISHED, JobError
from elasticthought.store.base import NotFound

log = logging.getLogger("elasticthought.engine")

ENGINES = ("torch", "caffe")
WAIT_SECONDS = 3600.0
UPLOAD_EVERY = 2.0
LOG_NAME = "train.log"
COUNTER_NAME = "iterations-trained"
SNAPSHOTS_IN_DOC = 20  # the newest snapshots listed in the job document
SNAPSHOT_RE = re.compile(r"^(?P<name>.+)_iter_(?P<iter>\d+)\.(?P<ext>caffemodel|solverstate)$")


def requirements(doc: dict) -> dict:
    """What a worker must offer: the job's engine (torch by default) and its GPUs."""
    return {"engine": doc.get("engine") or "torch", "gpu": doc.get("gpu", False)}


# Blob keys -----------------------------------------------------------------------------------


def key(job_id: str, name: str) -> str:
    return layout.prefix(job_id) + name


def snapshot_key(job_id: str, filename: str) -> str:
    return key(job_id, "snapshots/" + filename)


# Waiting for documents -----------------------------------------------------------------------


def wait_finished(ctx: Any, doc_id: str, what: str) -> dict:
    """The document once it finished processing (fails when it failed or vanished)."""
    deadline = time.monotonic() + WAIT_SECONDS
    delay = 0.2
    while True:
        try:
            doc = ctx.store.get(doc_id)
        except NotFound:
            raise JobError(f"{what} {doc_id} no longer exists") from None
        state = doc.get("processing-state", FINISHED)
        if state == FINISHED:
            return doc
        if state in FINAL_STATES:
            reason = doc.get("processing-log") or state
            raise JobError(f"{what} {doc_id} is {state}: {reason}"[:2000])
        if ctx.cancelled():
            raise JobError("canceled while waiting")
        if time.monotonic() > deadline:
            raise JobError(f"{what} {doc_id} did not finish in time (state {state})")
        ctx.progress(step=f"waiting for {what} {doc_id}")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def _download(ctx: Any, blob_key: str, path: Path) -> Path:
    tmp = path.with_name(path.name + ".part")
    with tmp.open("wb") as f:
        for chunk in ctx.blobs.iter_chunks(blob_key):
            f.write(chunk)
    os.replace(tmp, path)
    return path


# Metrics and log upload ----------------------------------------------------------------------


class Metrics:
    """Loss, lr and output series (columns, ready to plot), kept across attempts."""

    def __init__(self) -> None:
        self.train: dict[str, Any] = {"iteration": [], "loss": [], "lr": [], "outputs": {}}
        self.test: dict[str, Any] = {"iteration": [], "net": [], "outputs": {}}
        self.lock = threading.Lock()
        self.version = 0

    @staticmethod
    def _add(table: dict, row: dict, outputs: dict) -> None:
        n = len(table["iteration"])
        for col, value in row.items():
            table[col].append(value)
        for name, value in outputs.items():
            series = table["outputs"].setdefault(name, [None] * n)
            series.append(value)
        for series in table["outputs"].values():
            if len(series) < n + 1:
                series.append(None)

    def add_train(self, event: dict) -> None:
        with self.lock:
            row = {"iteration": event["iteration"], "loss": event["loss"], "lr": event["lr"]}
            self._add(self.train, row, event.get("outputs") or {})
            self.version += 1

    def add_test(self, event: dict) -> None:
        with self.lock:
            row = {"iteration": event["iteration"], "net": event.get("net", 0)}
            self._add(self.test, row, event.get("outputs") or {})
            self.version += 1

    def truncate(self, iteration: int) -> None:
        """Drop rows at or past `iteration` (a resumed run logs them again)."""
        with self.lock:
            for table in (self.train, self.test):
                keep = sum(1 for it in table["iteration"] if it < iteration)
                for col, values in table.items():
                    if col == "outputs":
                        for name in values:
                            del values[name][keep:]
                    else:
                        del values[keep:]

    def load(self, data: bytes) -> None:
        try:
            saved = json.loads(data)
            self.train, self.test = saved["train"], saved["test"]
        except (ValueError, KeyError, TypeError):
            pass

    def dumps(self) -> bytes:
        with self.lock:
            return json.dumps({"train": self.train, "test": self.test}).encode()


class Uploader:
    """Uploads the log and the metrics to the blob store every few seconds (a thread)."""

    def __init__(self, ctx: Any, log_path: Path, metrics: Metrics) -> None:
        self.ctx = ctx
        self.log_path = log_path
        self.metrics = metrics
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="et-log-upload", daemon=True)
        self._sizes = (-1, -1)

    def __enter__(self) -> Uploader:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_event.set()
        self.thread.join(10)
        self.upload()

    def _loop(self) -> None:
        while not self.stop_event.wait(UPLOAD_EVERY):
            try:
                self.upload()
            except Exception as exc:  # noqa: BLE001 - the next round retries
                logging.getLogger(__name__).warning("log upload failed: %s", exc)

    def upload(self) -> None:
        try:
            size = self.log_path.stat().st_size
        except OSError:
            size = -1
        state = (size, self.metrics.version)
        if state == self._sizes:
            return
        if size >= 0:
            with self.log_path.open("rb") as f:
                self.ctx.blobs.put(key(self.ctx.job_id, LOG_NAME), f.read(size))
        self.ctx.blobs.put(key(self.ctx.job_id, "metrics.json"), self.metrics.dumps())
        self._sizes = state


# Progress ------------------------------------------------------------------------------------


class Recorder:
    """The engine's progress callback: job fields, metrics, snapshot uploads."""

    def __init__(self, ctx: Any, metrics: Metrics, max_iter: int, start_iter: int) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.max_iter = max_iter
        self.start_iter = start_iter
        self.counter = ctx.work_dir / COUNTER_NAME
        self.prior = max(int(ctx.job.get("iterations-trained") or 0), _read_count(self.counter))
        self.count = self.prior
        self.snapshots: list[dict] = [
            s for s in ctx.job.get("snapshots") or [] if s.get("iteration", 0) <= start_iter
        ]
        self.tests: dict[int, dict] = {}
        self.last_iteration = start_iter
        self.done: dict | None = None

    def trained(self, iteration: int) -> int:
        return max(self.count, self.prior + max(0, iteration - self.start_iter))

    def tick(self, passes: int = 1) -> None:
        """One more training iteration ran (kept in the work dir, which survives a kill)."""
        self.count += passes
        self.counter.write_text(str(self.count))

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "train":
            self.metrics.add_train(event)
            iteration = int(event["iteration"])
            metric_hooks.training_iterations(
                requirements(self.ctx.job)["engine"], iteration - self.last_iteration
            )
            self.last_iteration = iteration
            self.ctx.progress(
                **{
                    "step": "training",
                    "loss": _num(event["loss"]),
                    "lr": _num(event["lr"]),
                    "last-iteration": self.last_iteration,
                    "max-iterations": self.max_iter,
                    "iter-per-s": _num(event.get("iter_per_s")),
                    "train-outputs": event.get("outputs") or {},
                    "iterations-trained": self.trained(self.last_iteration + 1),
                    "progress-at": time.time(),
                }
            )
        elif kind == "test":
            self.metrics.add_test(event)
            net = int(event.get("net", 0))
            self.tests[net] = {
                "iteration": event["iteration"], "net": net, "outputs": event.get("outputs"),
            }
            self.ctx.progress(**{"test-outputs": [self.tests[k] for k in sorted(self.tests)]})
        elif kind == "snapshot":
            self._snapshot(event)
        elif kind == "done":
            self.done = event
            self.last_iteration = int(event["iteration"])
            self.ctx.progress(
                **{
                    "last-iteration": self.last_iteration,
                    "iterations-trained": self.trained(self.last_iteration),
                }
            )

    def _snapshot(self, event: dict) -> None:
        entry: dict[str, Any] = {"iteration": int(event["iteration"])}
        for kind in ("caffemodel", "solverstate"):
            path = event.get(kind)
            if not path or not os.path.exists(path):
                continue
            blob_key = snapshot_key(self.ctx.job_id, os.path.basename(path))
            with open(path, "rb") as f:
                self.ctx.blobs.put(blob_key, f)
            entry[kind] = blob_key
        self.snapshots = [s for s in self.snapshots if s["iteration"] != entry["iteration"]]
        self.snapshots.append(entry)
        self.snapshots.sort(key=lambda s: s["iteration"])
        del self.snapshots[:-SNAPSHOTS_IN_DOC]  # all of them: GET /training-jobs/{id}/snapshots
        self.ctx.progress(snapshots=self.snapshots)


def _read_count(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _num(value: Any) -> float | str | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else str(value)


# Preparation ---------------------------------------------------------------------------------


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
            "create the dataset with \"compute-mean\": true"
        )
    return space.mean_file


def _rewrite(ctx: Any, solver_doc: dict, space: workspace.Workspace) -> Any:
    from elasticthought.engine.errors import FormatError
    from elasticthought.engine.prototxt import parse_net, parse_solver
    from elasticthought.engine.rewrite import rewrite_for_job

    try:
        solver = parse_solver(solver_doc["specification"])
        net = parse_net(solver_doc["specification-net"])
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
    for name, path in (("solver.prototxt", files.solver_path), ("net.prototxt", files.net_path)):
        ctx.blobs.put(key(ctx.job_id, name), path.read_bytes())
    return files


def _describe_sources(files: Any) -> None:
    """Log where each data layer of the rewritten net reads (and, for Data, the backend)."""
    from elasticthought.engine.proto import caffe_pb2
    from elasticthought.engine.rewrite import SOURCE_PARAMS, data_layers

    for layer, phases in data_layers(files.net):
        param = getattr(layer, SOURCE_PARAMS[layer.type])
        kind = ""
        if layer.type == "Data":
            kind = f" (backend: {caffe_pb2.DataParameter.DB.Name(param.backend)})"
        log.info("%s layer %s (%s) reads %s%s", layer.type, layer.name,
                 "/".join(sorted(phases)), param.source, kind)


def _weights(ctx: Any) -> Path | None:
    """The fine-tuning weights as a local file, or None."""
    spec = ctx.job.get("weights")
    if not spec:
        return None
    path = ctx.work_dir / "weights.caffemodel"
    if isinstance(spec, dict) and spec.get("training-job-id"):
        source = wait_finished(ctx, spec["training-job-id"], "training job")
        model = source.get("trained-model")
        if not model:
            raise JobError(f"training job {spec['training-job-id']} has no trained model")
        return _download(ctx, model, path)
    blob_key = key(ctx.job_id, "weights.caffemodel")
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
    return _download(ctx, blob_key, path)


def _resume_point(ctx: Any, prefix: str) -> tuple[int, Path] | None:
    """The newest complete snapshot (blob store first, then the work dir) as a local
    .solverstate whose learned_net names the local .caffemodel; None when there is none."""
    from elasticthought.engine.caffemodel import read_solverstate, write_solverstate

    name = os.path.basename(prefix)
    found: dict[int, dict[str, str]] = {}
    for blob_key in ctx.blobs.list(key(ctx.job_id, "snapshots/")):
        match = SNAPSHOT_RE.match(blob_key.rsplit("/", 1)[-1])
        if match and match["name"] == name:
            found.setdefault(int(match["iter"]), {})[match["ext"]] = blob_key
    # A snapshot written to the work dir just before a kill may not have been uploaded.
    local: set[int] = set()
    for path in Path(prefix).parent.glob(f"{name}_iter_*.solverstate"):
        match = SNAPSHOT_RE.match(path.name)
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
                _download(ctx, parts["caffemodel"], model)
                _download(ctx, parts["solverstate"], state)
            message = read_solverstate(str(state))
            if not model.stat().st_size:
                raise ValueError(f"{model.name} is empty")
            message.learned_net = str(model)
            write_solverstate(message, str(state))
            if len(parts) != 2:  # keep the blob store complete: upload the local one
                for path in (model, state):
                    with path.open("rb") as f:
                        ctx.blobs.put(snapshot_key(ctx.job_id, path.name), f)
        except Exception as exc:  # noqa: BLE001 - try an older snapshot
            log.warning("snapshot %d unusable: %s", iteration, exc)
            continue
        return iteration, state
    return None


# Training ------------------------------------------------------------------------------------


def _train_torch(ctx: Any, files: Any, recorder: Recorder, weights: Path | None,
                 resume: Path | None) -> Path | None:
    from elasticthought.engine.torch.solver import SolverError, get_solver

    device = "cuda:0" if ctx.gpus else "cpu"
    cwd = os.getcwd()
    os.chdir(ctx.work_dir)
    solver = None
    try:
        solver = get_solver(
            str(files.solver_path), device=device, callback=recorder, cancel_check=ctx.cancelled
        )
        if weights is not None and resume is None:
            solver.load_weights(str(weights))
        passes = [0]

        def count_pass() -> None:
            passes[0] += 1
            if passes[0] % max(1, solver.param.iter_size) == 0:
                recorder.tick()

        solver.add_before_forward(count_pass)
        solver.solve(resume_file=str(resume) if resume else None)
        if solver.requested_early_exit:
            return None
        final = ctx.work_dir / "final.caffemodel"
        solver.net.save(final)
        return final
    except (SolverError, ValueError) as exc:
        raise JobError(f"training failed: {exc}") from None
    finally:
        if solver is not None:
            solver.close()
        os.chdir(cwd)


def _train_caffe(ctx: Any, files: Any, recorder: Recorder, weights: Path | None,
                 resume: Path | None, log_path: Path) -> Path | None:
    try:
        from elasticthought.engine.caffe.backend import CaffeError, train
    except ImportError as exc:
        raise JobError(f"engine 'caffe' is not available in this build: {exc}") from None
    try:
        result = train(
            files.solver_path,
            ctx.work_dir,
            weights=weights if resume is None else None,
            snapshot=resume,
            callback=recorder,
            on_iteration=lambda _event: recorder.tick(),
            cancel_check=ctx.cancelled,
            python=ctx.config.caffe_python,
            prefix=ctx.config.caffe_prefix,
            log_path=log_path,
        )
    except CaffeError as exc:
        raise JobError(str(exc)) from None
    if result.state != "finished":
        return None
    model = result.model or f"{files.snapshot_prefix}_iter_{result.iteration}.caffemodel"
    if not os.path.exists(model):
        raise JobError("real Caffe finished without writing a model (enable snapshot_after_train)")
    final = ctx.work_dir / "final.caffemodel"
    shutil.copyfile(model, final)
    return final


def _record_for_classifier(files: Any, mean_key: str | None) -> dict[str, Any]:
    """The TEST-phase input the classifier must reproduce: transform and input shape."""
    from elasticthought.engine.netstate import filter_net
    from elasticthought.jobs.evaluate import data_layer, transform_of

    test_net = filter_net(files.net, "TEST", (), 0)
    layer = data_layer(test_net)
    transform = transform_of(layer)
    if "mean_file" in transform:
        transform["mean_file"] = mean_key
    return {"transform": transform, "data-layer": layer.name, "data-layer-type": layer.type}


def _clean(work_dir: Path) -> None:
    """Empty the work dir of a finished job: everything it made is in the blob store."""
    for child in work_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def run(ctx: Any) -> dict[str, Any]:
    from elasticthought.engine.torch import glog
    from elasticthought.jobs.evaluate import EvaluationError, evaluate

    job = ctx.job
    engine = job.get("engine") or "torch"
    if engine not in ENGINES:
        raise JobError(f"unknown engine {engine!r} (torch or caffe)")
    try:
        solver_doc = ctx.store.get(job["solver-id"])
    except NotFound:
        raise JobError(f"solver {job['solver-id']} no longer exists") from None
    dataset = wait_finished(ctx, solver_doc["dataset-id"], "dataset")
    space = workspace.prepare(ctx, dataset)
    files = _rewrite(ctx, solver_doc, space)
    weights = _weights(ctx)
    # An earlier attempt (lease lost, or released at shutdown) left its log, metrics and
    # snapshots: keep the log, continue from the newest snapshot.
    log_path = ctx.work_dir / LOG_NAME
    if not log_path.exists() and ctx.blobs.exists(key(ctx.job_id, LOG_NAME)):
        _download(ctx, key(ctx.job_id, LOG_NAME), log_path)
    metrics = Metrics()
    if ctx.blobs.exists(key(ctx.job_id, "metrics.json")):
        metrics.load(ctx.blobs.get(key(ctx.job_id, "metrics.json")))
    resume = None
    start_iter = 0
    point = _resume_point(ctx, files.snapshot_prefix)
    if point is not None:
        start_iter, resume = point
    metrics.truncate(start_iter)
    max_iter = int(files.solver.max_iter)
    recorder = Recorder(ctx, metrics, max_iter, start_iter)
    fields: dict[str, Any] = {
        "engine": engine,
        "engine-version": engine_version(engine, ctx.config),
        "max-iterations": max_iter,
        "labels": dataset.get("labels") or [],
        "step": "training",
    }
    if resume is not None:
        fields["resumed-from-iteration"] = start_iter
    ctx.progress(**fields)
    started = time.time()
    with glog.capture(str(log_path)), Uploader(ctx, log_path, metrics):
        _describe_sources(files)
        if resume is not None:
            log.info("Attempt %d resumes from the snapshot of iteration %d", ctx.attempt,
                     start_iter)
        elif log_path.stat().st_size if log_path.exists() else 0:
            log.info("Attempt %d starts from iteration 0 (no snapshot yet)", ctx.attempt)
        if engine == "caffe":
            final = _train_caffe(ctx, files, recorder, weights, resume, log_path)
        else:
            final = _train_torch(ctx, files, recorder, weights, resume)
        if final is None:
            return {"step": "canceled"}
        model_key = key(ctx.job_id, "model.caffemodel")
        with final.open("rb") as f:
            ctx.blobs.put(model_key, f)
        seconds = time.time() - started
        ctx.progress(step="evaluating", **{"trained-model": model_key})
        log.info("Evaluating %s on the %d test records", final.name, space.counts["TEST"])
        try:
            evaluation = evaluate(
                str(files.net_path), str(final), space.counts["TEST"],
                device="cuda:0" if ctx.gpus else "cpu", cancel_check=ctx.cancelled,
            )
            log.info("Evaluation: accuracy = %.6g (%d of %d)", evaluation["accuracy"],
                     evaluation["correct"], evaluation["count"])
        except Exception as exc:  # noqa: BLE001 - the model is trained; evaluation is extra
            if ctx.cancelled():
                return {"step": "canceled"}
            reason = str(exc)
            if not isinstance(exc, EvaluationError):
                reason = f"{type(exc).__name__}: {reason}"
            evaluation = {"error": reason}
            log.warning("Evaluation skipped: %s", reason)
    artifacts = dataset.get("artifacts") or {}
    classifier = _record_for_classifier(files, artifacts.get("mean"))
    _clean(ctx.work_dir)
    result: dict[str, Any] = {
        "step": "done",
        "engine": engine,
        "engine-version": fields["engine-version"],
        "trained-model": model_key,
        "trained-model-url": f"/training-jobs/{ctx.job_id}/model",
        "labels": dataset.get("labels") or [],
        "layers_type": dataset.get("layers_type"),
        "dataset-id": dataset["_id"],
        "net": key(ctx.job_id, "net.prototxt"),
        "solver": key(ctx.job_id, "solver.prototxt"),
        "snapshots": recorder.snapshots,
        "evaluation": evaluation,
        "last-iteration": recorder.last_iteration,
        "max-iterations": max_iter,
        "iterations-trained": recorder.trained(recorder.last_iteration),
        "training-seconds": round(seconds, 3),
        "input-shape": evaluation.pop("input-shape", None),
        **classifier,
    }
    return result
