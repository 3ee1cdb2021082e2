"""Warm inference: a long-lived process that keeps loaded models and answers requests at once.

`InferenceService` (in the API process) owns one inference process, started on first use as a
fork of the warm fork server (the engine already imported, `warm.py`). A request names a model
by `key` with its `spec` (a classifier document) and a `payload` (the images); the process
loads the model once through the handler `target` ("module:function", called as
`target(env, spec)` and returning an object with `run(payloads) -> results`), keeps it while
the memory of the loaded models stays within the cache (least recently used evicted first),
and serves every request waiting for the same model in one `run` (one batch).

Isolation: a crash of the process (segfault, abort, out-of-memory kill) fails the requests in
flight on it, with the reason; the next request starts a fresh process. A model that fails to
load or run fails its requests only. The process runs under the job memory limit (RLIMIT_AS,
`--job-memory-limit`, as a classify job would): a request that needs more fails with the limit
named, and the process serves on. It leads its own process group, dies with its parent
(PDEATHSIG) and exits when the service's pipe closes.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import signal
import threading
import time
import traceback
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elasticthought.bounded import is_memory_failure
from elasticthought.config import Config
from elasticthought.queue.budget import apply_thread_limit, os_cpus
from elasticthought.queue.context import job_work_dir, kill_group, set_parent_death_signal
from elasticthought.queue.limits import apply_job_limits, explain_failure
from elasticthought.queue.registry import load_target

log = logging.getLogger(__name__)

MB = 1024 * 1024
#: The handler that loads a classifier document (named, not imported: queue sits below jobs).
CLASSIFIER_HANDLER = "elasticthought.jobs.classify:open_warm_classifier"
#: The part of the work directory models are unpacked into (one folder per loaded model).
WORK_PREFIX = "inference-"


class InferenceFailed(RuntimeError):
    """The request could not be answered (the message is the reason, for the caller)."""


class InferenceTimeout(InferenceFailed):
    """No answer within the caller's time (the request may still be answered later)."""


# The inference process -------------------------------------------------------------------------


@dataclass
class InferenceEnv:
    """What a handler gets to load a model in the inference process."""

    config: Config
    store_url: str
    blobs_url: str
    work_dir: Path  # this model's own folder (removed when the model is evicted)


def _rss_bytes() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ModelCache:
    """Loaded models by key, least recently used first; sizes are the process memory each
    load added (at least 1 MB). Evicts while the total is over `limit_bytes`, never the model
    in use."""

    def __init__(self, load: Any, limit_bytes: int) -> None:
        self.load = load
        self.limit = limit_bytes
        self.models: OrderedDict[str, tuple[str, Any, int, Path]] = OrderedDict()
        self.loads = 0
        self.evictions = 0

    def get(self, key: str, version: str, spec: dict, make_env: Any) -> Any:
        """The model `key` at `version`, loaded from `spec` with `make_env()` when not held."""
        held = self.models.get(key)
        if held is not None and held[0] == version:
            self.models.move_to_end(key)
            return held[1]
        if held is not None:
            self._drop(key)
        env = make_env()
        env.work_dir.mkdir(parents=True, exist_ok=True)
        before = _rss_bytes()
        model = self.load(env, spec)
        size = max(MB, _rss_bytes() - before)
        self.loads += 1
        self.models[key] = (version, model, size, env.work_dir)
        while len(self.models) > 1 and self.total() > self.limit:
            self._drop(next(iter(self.models)))
            self.evictions += 1
        return model

    def total(self) -> int:
        return sum(m[2] for m in self.models.values())

    def _drop(self, key: str) -> None:
        _, model, _, work = self.models.pop(key)
        del model
        shutil.rmtree(work, ignore_errors=True)

    def stats(self) -> dict[str, Any]:
        return {
            "loaded": list(self.models),
            "loads": self.loads,
            "evictions": self.evictions,
            "bytes": self.total(),
            "pid": os.getpid(),
        }


def inference_main(
    target: str, config: Config, store_url: str, blobs_url: str, limit_bytes: int, conn: Any
) -> None:
    """Entry point of the inference process: serve requests until the pipe closes."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    set_parent_death_signal(signal.SIGKILL)
    apply_job_limits({}, config)  # a request that needs more fails alone, naming the limit
    apply_thread_limit(config.cpus or os_cpus())
    cache = ModelCache(load_target(target), limit_bytes)
    while True:
        try:
            batch = [conn.recv()]
            while conn.poll():  # everything waiting now is served together
                batch.append(conn.recv())
        except (EOFError, OSError):
            os._exit(0)
        _serve(batch, cache, config, store_url, blobs_url, conn)


def _serve(batch: list, cache: ModelCache, config: Config, store_url: str, blobs_url: str,
           conn: Any) -> None:  # fmt: skip
    groups: OrderedDict[str, list] = OrderedDict()
    for msg in batch:
        if msg[0] == "stats":
            conn.send(("ok", msg[1], cache.stats(), 0.0))
        else:
            groups.setdefault(msg[2], []).append(msg)
    for key, msgs in groups.items():
        _, _, _, version, spec, _ = msgs[0]

        def make_env(key: str = key) -> InferenceEnv:
            work = job_work_dir(config, WORK_PREFIX + key)
            return InferenceEnv(config, store_url, blobs_url, work)

        started = time.perf_counter()
        try:
            model = cache.get(key, version, spec, make_env)
            results = model.run([m[5] for m in msgs])
            took = time.perf_counter() - started
            replies = [("ok", m[1], r, took) for m, r in zip(msgs, results, strict=True)]
        except Exception as exc:  # noqa: BLE001 - the requests fail, the process serves on
            log.debug("inference %s failed:\n%s", key, traceback.format_exc())
            text = str(exc) or type(exc).__name__
            if is_memory_failure(exc):  # named as a job's child names it, so the limit is told
                text = f"{type(exc).__name__}: {text}"
            reason = explain_failure(text, None, config, False)
            replies = [("error", m[1], reason, 0.0) for m in msgs]
        for reply in replies:
            conn.send(reply)


# The service (in the API process) --------------------------------------------------------------


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"the inference process died: {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"the inference process ended (exit code {code})"


class _Process:
    """One inference process and the requests in flight on it."""

    def __init__(self, service: InferenceService) -> None:
        from elasticthought.queue.warm import warm_context

        ctx = warm_context(service.config.runner_modules)
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=inference_main,
            name="et-inference",
            args=(service.target, service.config, service.config.store_url,
                  service.config.blobs_url, service.limit_bytes, child_conn),
        )  # fmt: skip
        self.proc.daemon = True
        self.proc.start()
        child_conn.close()
        self.pending: dict[int, Future] = {}
        self.lock = threading.Lock()
        self.alive = True
        threading.Thread(target=self._read, name="et-inference-reader", daemon=True).start()

    def send(self, msg: tuple, future: Future) -> None:
        with self.lock:
            if not self.alive:
                raise InferenceFailed(_describe_exit(self.proc.exitcode))
            self.pending[msg[1]] = future
            try:
                self.conn.send(msg)
            except (OSError, ValueError) as exc:
                self.pending.pop(msg[1], None)
                raise InferenceFailed(f"the inference process is gone: {exc}") from None

    def _read(self) -> None:
        while True:
            try:
                status, req_id, value, took = self.conn.recv()
            except (EOFError, OSError):
                break
            with self.lock:
                future = self.pending.pop(req_id, None)
            if future is None:
                continue
            if status == "ok":
                future.set_result((value, took))
            else:
                future.set_exception(InferenceFailed(value))
        self.proc.join(5)
        reason = _describe_exit(self.proc.exitcode)
        with self.lock:
            self.alive = False
            pending, self.pending = self.pending, {}
        for future in pending.values():
            future.set_exception(InferenceFailed(reason))

    def close(self) -> None:
        self.alive = False
        try:
            self.conn.close()
        except OSError:
            pass
        if self.proc.pid:
            kill_group(self.proc.pid)
        self.proc.join(5)


class InferenceService:
    """Warm inference for one API process: `run(key, version, spec, payload, timeout)`."""

    def __init__(self, config: Config, target: str, cache_mb: int | None = None) -> None:
        self.config = config
        self.target = target
        mb = config.classifier_cache_mb if cache_mb is None else cache_mb
        self.limit_bytes = max(1, int(mb)) * MB
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._process: _Process | None = None

    def _current(self) -> _Process:
        with self._lock:
            if self._process is None or not self._process.alive:
                self._process = _Process(self)
            return self._process

    def run(
        self, key: str, version: str, spec: dict, payload: Any, timeout: float,
        timing: dict[str, float] | None = None,
    ) -> Any:  # fmt: skip
        """The handler's result for `payload` with the model `key` at `version` (loaded from
        `spec` when the process does not hold it): `InferenceFailed` with the reason, or
        `InferenceTimeout` after `timeout` seconds. `timing`, when given, gets `model`: the
        seconds the inference process spent on the batch this request was served in (loading
        the model when it had to, and the handler's `run`)."""
        value, took = self._ask(("run", next(self._ids), key, version, spec, payload), timeout)
        if timing is not None:
            timing["model"] = took
        return value

    def stats(self, timeout: float = 30.0) -> dict[str, Any]:
        """The process's loaded models (least recently used first), loads, evictions, pid."""
        return self._ask(("stats", next(self._ids)), timeout)[0]

    def _ask(self, msg: tuple, timeout: float) -> tuple[Any, float]:
        future: Future = Future()
        self._current().send(msg, future)
        try:
            return future.result(timeout=max(0.0, timeout))
        except FutureTimeout:
            raise InferenceTimeout(f"no answer within {timeout:g} s") from None

    def pid(self) -> int | None:
        with self._lock:
            return self._process.proc.pid if self._process and self._process.alive else None

    def close(self) -> None:
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            process.close()
