"""Gauges of shared state, computed at scrape time in the API process: jobs pending and
processing, live workers, and the scaling signal. The store is the truth shared by every
process, so these come from it (through a follower of its changes feed, or the worker pool's
own index when this process runs one), never from per-process counters. Query them with
max() across API replicas, not sum(): every replica reports the same store."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from elasticthought.config import Config
from elasticthought.documents.states import PENDING, PROCESSING
from elasticthought.metrics.scaling import (
    ScalingRule,
    capability_of,
    demands,
    gpu_label,
    slots_per_worker,
)
from elasticthought.queue.presence import list_workers
from elasticthought.queue.registry import RUNNERS, import_available_runner_modules
from elasticthought.store.base import ID_SEP, NotFound, Store

log = logging.getLogger(__name__)

FEED_TIMEOUT = 1.0
READY_WAIT = 5.0  # a scrape right after start-up waits this long for the first full read
RULE_TEXT = (
    "recommended = max over the last cooldown seconds of "
    "min(max(ceil((running + pending) / slots_per_worker), min_workers), max_workers)"
)


class JobFollower:
    """Pending and processing job documents, kept from the store's changes feed (for an API
    process without a worker pool). Exposes the pool's `JobIndex` interface."""

    def __init__(self, store: Store, runner_modules: str) -> None:
        from elasticthought.queue.pool import JobIndex

        self.store = store
        self.index = JobIndex()
        self.caught_up = threading.Event()
        self._halt = threading.Event()
        import_available_runner_modules(runner_modules)
        self._thread = threading.Thread(target=self._follow, name="et-metrics-feed", daemon=True)

    def start(self) -> JobFollower:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._halt.set()
        self._thread.join(FEED_TIMEOUT + 1.0)

    def _follow(self) -> None:
        since: str | None = None
        types = frozenset(RUNNERS)
        while not self._halt.is_set():
            if frozenset(RUNNERS) != types:
                types, since = frozenset(RUNNERS), None
            try:
                page = self.store.changes(since, timeout=0.0 if since is None else FEED_TIMEOUT)
                for doc_id in dict.fromkeys(page.ids):
                    if doc_id.split(ID_SEP, 1)[0] not in types:
                        continue
                    try:
                        self.index.apply(doc_id, self.store.get(doc_id))
                    except NotFound:
                        self.index.apply(doc_id, None)
            except Exception as exc:  # noqa: BLE001 - keep following through store hiccups
                if self._halt.is_set():
                    return
                log.warning("metrics: changes feed: %s", exc)
                self._halt.wait(1.0)
                continue
            since = page.last_seq
            self.caught_up.set()


def _speed(doc: dict) -> float:
    """The training speed a job document last reported (`iter-per-s`), else 0."""
    value = doc.get("iter-per-s")
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0.0
    return max(0.0, float(value))


class ScalingSignal:
    """Counts per capability from the job index and the presence documents, and the rule."""

    def __init__(self, config: Config, store: Store, pool: Any = None) -> None:
        self.config = config
        self.store = store
        self.follower: JobFollower | None = None
        if pool is not None:
            self.index, self.caught_up = pool.index, pool.caught_up
        else:
            self.follower = JobFollower(store, config.runner_modules).start()
            self.index, self.caught_up = self.follower.index, self.follower.caught_up
        self.rule = ScalingRule(
            min_workers=config.scale_min_workers,
            max_workers=config.scale_max_workers,
            slots_per_worker=max(1, config.scale_slots_per_worker),
            cooldown=config.scale_cooldown_seconds,
        )

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()

    def jobs(self) -> list[tuple[str, str, tuple[str, str], float]]:
        """(type, state, capability, iterations per second) of every pending and processing
        job (the speed a running training job last reported, else 0)."""
        self.caught_up.wait(READY_WAIT)
        with self.index.cond:
            docs = [(d, PENDING) for d in self.index.pending.values()]
            docs += [(d, PROCESSING) for d in self.index.processing.values()]
        return [(str(d.get("type")), state, capability_of(d), _speed(d)) for d, state in docs]

    def compute(self) -> dict:
        """The `/scaling` answer (also records the cool-down history)."""
        jobs = self.jobs()
        workers = list_workers(self.store, alive_only=True)
        rows = demands(((cap, state) for _, state, cap, _ in jobs), workers)
        out: dict[str, Any] = {
            "rule": RULE_TEXT,
            "min-workers": self.rule.min_workers,
            "max-workers": self.rule.max_workers,
            "cooldown-seconds": self.rule.cooldown,
            "capabilities": [],
            "totals": [],
        }
        for row in rows:
            slots = slots_per_worker(self.config.scale_slots_per_worker, row)
            recommended = self.rule.recommend(
                (row.engine, row.gpu), row.running, row.pending, slots_per_worker=slots
            )
            section = "totals" if row.engine == "all" else "capabilities"
            out[section].append(row.as_dict(recommended, slots))
        return {**out, "_jobs": jobs, "_workers": workers}


class StateCollector:
    """A prometheus_client collector of the gauges above (registered per scrape)."""

    def __init__(self, signal: ScalingSignal) -> None:
        self.signal = signal

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        data = self.signal.compute()
        jobs = GaugeMetricFamily(
            "elasticthought_jobs",
            "Jobs pending or processing now, by type, state, engine and GPU need",
            labels=("type", "state", "engine", "gpu"),
        )
        counts = Counter((t, s, e, g) for t, s, (e, g), _ in data["_jobs"])
        for labels, value in sorted(counts.items()):
            jobs.add_metric(list(labels), value)
        yield jobs
        depth = GaugeMetricFamily(
            "elasticthought_queue_depth", "Jobs pending now (all types and capabilities)"
        )
        depth.add_metric([], sum(1 for _, s, _, _ in data["_jobs"] if s == PENDING))
        yield depth
        speed = GaugeMetricFamily(
            "elasticthought_training_iterations_per_second",
            "Sum of the iterations per second the running training jobs last reported",
            labels=("engine",),
        )
        by_engine: dict[str, float] = {}
        for _, state, (engine, _), rate in data["_jobs"]:
            if state == PROCESSING and rate > 0:
                by_engine[engine] = by_engine.get(engine, 0.0) + rate
        for engine, rate in sorted(by_engine.items()):
            speed.add_metric([engine], rate)
        yield speed
        yield from _worker_gauges(data["_workers"])
        yield from _scaling_gauges([*data["capabilities"], *data["totals"]])


def _worker_gauges(workers: Iterable[dict]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    count = GaugeMetricFamily(
        "elasticthought_workers",
        "Live worker processes, by engine offered and GPU",
        labels=("engine", "gpu"),
    )
    free = GaugeMetricFamily(
        "elasticthought_worker_slots_free",
        "Free job slots of live workers, by engine offered and GPU",
        labels=("engine", "gpu"),
    )
    per: dict[tuple[str, str], list[int]] = {}
    for w in workers:
        caps = w.get("capabilities") or {}
        gpu = gpu_label(len(caps.get("gpus") or []))
        idle = max(0, int(w.get("threads") or 0) - len(w.get("running") or []))
        for engine in caps.get("engines") or []:
            entry = per.setdefault((str(engine), gpu), [0, 0])
            entry[0] += 1
            entry[1] += idle
    for labels, (n, idle) in sorted(per.items()):
        count.add_metric(list(labels), n)
        free.add_metric(list(labels), idle)
    yield count
    yield free


SCALING_GAUGES = (
    ("pending", "elasticthought_scaling_pending_jobs", "Jobs pending, per capability"),
    ("running", "elasticthought_scaling_running_jobs", "Jobs processing, per capability"),
    ("workers", "elasticthought_scaling_workers", "Live workers able to run the capability"),
    ("free-slots", "elasticthought_scaling_free_slots", "Free slots of those workers"),
    (
        "recommended-workers",
        "elasticthought_scaling_recommended_workers",
        "Workers recommended by the scaling rule (engine=all: total per GPU need)",
    ),
)


GAUGE_NAMES = (
    "elasticthought_jobs",
    "elasticthought_queue_depth",
    "elasticthought_training_iterations_per_second",
    "elasticthought_workers",
    "elasticthought_worker_slots_free",
    *(name for _, name, _ in SCALING_GAUGES),
)


def _scaling_gauges(rows: list[dict]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    for field, name, text in SCALING_GAUGES:
        family = GaugeMetricFamily(name, text, labels=("engine", "gpu"))
        for row in rows:
            family.add_metric([row["engine"], "true" if row["gpu"] else "false"], row[field])
        yield family
