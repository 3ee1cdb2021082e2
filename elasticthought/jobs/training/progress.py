"""A training run's progress: the engine's events as job fields (`documents.status`), the
metrics series, and the log, metrics and snapshots uploaded to the blob store while it runs."""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from elasticthought.blobs import layout
from elasticthought.documents import status as st
from elasticthought.documents.fields import ENGINE
from elasticthought.engine.registry import DEFAULT_ENGINE
from elasticthought.jobs import quota
from elasticthought.metrics import hooks as metric_hooks
from elasticthought.queue.context import JobContext
from elasticthought.queue.registry import JobError

UPLOAD_EVERY = 2.0
COUNTER_NAME = "iterations-trained"  # the work-dir file counting iterations across attempts
SNAPSHOTS_IN_DOC = 20  # the newest snapshots listed in the job document


class Metrics:
    """Loss, lr and output series (columns, ready to plot), kept across attempts."""

    def __init__(self) -> None:
        self.train: dict[str, Any] = {c: [] for c in st.TRAIN_COLUMNS} | {st.OUTPUTS: {}}
        self.test: dict[str, Any] = {c: [] for c in st.TEST_COLUMNS} | {st.OUTPUTS: {}}
        self.lock = threading.Lock()
        self.version = 0

    @staticmethod
    def _add(table: dict, row: dict, outputs: dict) -> None:
        n = len(table["iteration"])
        for col, value in row.items():
            table[col].append(value)
        for name, value in outputs.items():
            series = table[st.OUTPUTS].setdefault(name, [None] * n)
            series.append(value)
        for series in table[st.OUTPUTS].values():
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
                    if col == st.OUTPUTS:
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

    def __init__(self, ctx: JobContext, log_path: Path, metrics: Metrics) -> None:
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
                self.ctx.blobs.put(layout.key(self.ctx.job_id, layout.LOG), f.read(size))
        self.ctx.blobs.put(layout.key(self.ctx.job_id, layout.METRICS), self.metrics.dumps())
        self._sizes = state


class Recorder:
    """The engine's progress callback: job fields, metrics, snapshot uploads."""

    def __init__(self, ctx: JobContext, metrics: Metrics, max_iter: int, start_iter: int) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.max_iter = max_iter
        self.start_iter = start_iter
        self.counter = ctx.work_dir / COUNTER_NAME
        # A resumed run trained at least up to the snapshot it resumes from.
        self.prior = max(
            int(ctx.job.get(st.ITERATIONS_TRAINED) or 0), _read_count(self.counter), start_iter
        )
        self.count = self.prior
        self.snapshots: list[dict] = [
            s for s in ctx.job.get(st.SNAPSHOTS) or [] if s.get("iteration", 0) <= start_iter
        ]
        self.tests: dict[int, dict] = {}
        self.last_iteration = start_iter
        self.done: dict | None = None

    def trained(self, iteration: int) -> int:
        return max(self.count, self.prior + max(0, iteration - self.start_iter))

    def tick(self) -> None:
        """One more training iteration ran (kept in the work dir, which survives a kill)."""
        self.count += 1
        # atomically: a kill between truncating and writing must not lose the count
        partial = self.counter.with_name(self.counter.name + ".part")
        partial.write_text(str(self.count))
        os.replace(partial, self.counter)

    def __call__(self, event: dict) -> None:
        kind = event.get("event")
        if kind == "train":
            check_finite_loss(event.get("loss"), int(event["iteration"]))
            self.metrics.add_train(event)
            iteration = int(event["iteration"])
            metric_hooks.training_iterations(
                self.ctx.job.get(ENGINE) or DEFAULT_ENGINE, iteration - self.last_iteration
            )
            self.last_iteration = iteration
            self.ctx.progress(
                **{
                    st.STEP: "training",
                    st.LOSS: _num(event["loss"]),
                    st.LR: _num(event["lr"]),
                    st.LAST_ITERATION: self.last_iteration,
                    st.MAX_ITERATIONS: self.max_iter,
                    st.ITER_PER_S: _num(event.get("iter_per_s")),
                    st.TRAIN_OUTPUTS: event.get("outputs") or {},
                    st.ITERATIONS_TRAINED: self.trained(self.last_iteration + 1),
                    st.PROGRESS_AT: time.time(),
                }
            )
        elif kind == "test":
            self.metrics.add_test(event)
            net = int(event.get("net", 0))
            self.tests[net] = {
                "iteration": event["iteration"], "net": net, "outputs": event.get("outputs"),
            }  # fmt: skip
            self.ctx.progress(**{st.TEST_OUTPUTS: [self.tests[k] for k in sorted(self.tests)]})
        elif kind == "snapshot":
            self._snapshot(event)
        elif kind == "done":
            self.done = event
            self.last_iteration = int(event["iteration"])
            self.ctx.progress(
                **{
                    st.LAST_ITERATION: self.last_iteration,
                    st.ITERATIONS_TRAINED: self.trained(self.last_iteration),
                }
            )

    def _snapshot(self, event: dict) -> None:
        entry: dict[str, Any] = {"iteration": int(event["iteration"])}
        for kind in ("caffemodel", "solverstate"):
            path = event.get(kind)
            if not path or not os.path.exists(path):
                continue
            blob_key = layout.snapshot(self.ctx.job_id, os.path.basename(path))
            quota.put_file(
                self.ctx,
                blob_key,
                Path(path),
                f"storing the snapshot at iteration {entry['iteration']}",
            )
            entry[kind] = blob_key
        self.snapshots = [s for s in self.snapshots if s["iteration"] != entry["iteration"]]
        self.snapshots.append(entry)
        self.snapshots.sort(key=lambda s: s["iteration"])
        del self.snapshots[:-SNAPSHOTS_IN_DOC]  # all of them: GET /training-jobs/{id}/snapshots
        self.ctx.progress(**{st.SNAPSHOTS: self.snapshots})


class LossDiverged(JobError):
    """Training stopped: the loss is no longer a finite number."""


def check_finite_loss(loss: Any, iteration: int) -> None:
    """Raise `LossDiverged` ("loss diverged (NaN at iteration N)") for a NaN or infinite loss:
    more iterations cannot bring it back, so the job fails on this attempt."""
    if loss is None:
        return
    try:
        value = float(loss)
    except (TypeError, ValueError):
        return
    if not math.isfinite(value):
        word = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        raise LossDiverged(f"loss diverged ({word} at iteration {iteration})")


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
