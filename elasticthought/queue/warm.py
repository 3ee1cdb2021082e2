"""Warm job processes: a fork server with the engine already imported.

Starting a fresh interpreter and importing torch costs seconds per job. Instead every worker
process keeps one fork server (multiprocessing's `forkserver` start method), started when the
pool starts, that has imported the torch engine and the runner modules once; each job is a
fresh fork of it. Isolation stays as with spawned children: every job is its own process (a
crash, abort or out-of-memory kill ends that job only), leads its own process group, and dies
with the fork server, which dies with the worker (`child.child_main`).

The fork server is started with `OMP_WAIT_POLICY=PASSIVE` in its environment (OpenMP reads it
when torch loads); thread counts are set per job in the child (`budget.apply_thread_limit`).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import sys
import threading
from multiprocessing.context import BaseContext

from elasticthought.queue.budget import OMP_WAIT_POLICY

log = logging.getLogger(__name__)

#: What the fork server imports before it forks the first job (names, imported there only).
ENGINE_PRELOAD = (
    "elasticthought.queue.forkserver_signals",  # first: Ctrl-C during the imports is quiet
    "elasticthought.queue.child",
    "elasticthought.engine.torch.facade",
    "elasticthought.engine.torch.solver",  # torch itself, the net and its layers
)

_lock = threading.Lock()
_started = False


def main_preload() -> list[str]:
    """What the fork server imports to run the parent's main module once: multiprocessing runs
    the main module again in every process it starts (milliseconds of CPU per job, more when
    it imports much); run in the fork server first (`forkserver_main`), the forked children
    skip it. A package's `__main__` (`python -m pkg`) is never run again in children and is
    left alone; so is a main module without a file (`python -c`)."""
    from multiprocessing import spawn

    from elasticthought.queue.forkserver_main import ARGV_ENV, MAIN_ENV, MAIN_MODULE_ENV

    main = sys.modules.get("__main__")
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name:
        if name == "__main__" or name.endswith(".__main__"):
            return []
        os.environ[MAIN_MODULE_ENV] = name  # read (and dropped) by the fork server only
    else:
        path = spawn.get_preparation_data("et-warm").get("init_main_from_path")
        if not path:
            return []
        os.environ[MAIN_ENV] = path
    os.environ[ARGV_ENV] = json.dumps(sys.argv)
    return ["elasticthought.queue.forkserver_main"]


def cold_context() -> BaseContext:
    """A fresh interpreter per job (spawn)."""
    return multiprocessing.get_context("spawn")


def warm_context(runner_modules: str = "") -> BaseContext:
    """The fork-server context (started once per process, preloading the engine and the
    runner modules); the caller's processes fork from it."""
    global _started
    ctx = multiprocessing.get_context("forkserver")
    with _lock:
        if not _started:
            modules = list(ENGINE_PRELOAD)
            modules += [m.strip() for m in runner_modules.split(",") if m.strip()]
            modules += main_preload()
            ctx.set_forkserver_preload(modules)
            os.environ.setdefault("OMP_WAIT_POLICY", OMP_WAIT_POLICY)
            _started = True
    return ctx


def _probe_target() -> None:
    """The throwaway first process of the fork server (it has nothing to do)."""


#: How long a failed start waits to learn whether the service is stopping (then it is no error).
STOPPING_WAIT_SECONDS = 5.0


def prestart(runner_modules: str = "", stopping: threading.Event | None = None) -> threading.Event:
    """Start the fork server now (in the background); the event is set once it is up (or
    failed to start: a job start then tries again and reports). A worker claims no job before
    it is set, so no claimed job waits for the engine imports with its lease running.
    A start that fails because the service is stopping (`stopping` set: the signal that stops
    the service reached the fork server too) is logged as that, not as an error."""
    ready = threading.Event()

    def start() -> None:
        try:
            # The server imports the preloaded modules before it answers its first request:
            # one throwaway process started and joined waits for exactly that.
            probe = warm_context(runner_modules).Process(target=_probe_target, name="et-warm-probe")
            probe.start()
            probe.join(300)
        except Exception:  # noqa: BLE001
            if stopping is not None and stopping.wait(STOPPING_WAIT_SECONDS):
                log.info("the warm job fork server ended while starting: the service is stopping")
            else:
                log.exception("starting the warm job fork server")
        finally:
            ready.set()

    threading.Thread(target=start, name="et-forkserver-start", daemon=True).start()
    return ready
