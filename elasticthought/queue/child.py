"""The job's child process: runs the registered function and reports back over pipes.

Forked from the worker's warm fork server (engine already imported, `warm.py`; usually ahead
of time, waiting in `standby_main` for its job) or, cold, a fresh spawned interpreter; all
start the job in `child_main`, and the job itself starts executing in
`run_job`, the one place per-job settings are applied (its CPU threads). The child leads its own
process group (so the worker can end it and everything it started at once), asks for SIGKILL
when its parent dies (the fork server, which dies with the worker), and also watches the
command pipe: when the worker process is gone the pipe closes and the child kills its group.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from elasticthought.config import Config
from elasticthought.engine.allocator import keep_freed_memory
from elasticthought.queue.budget import apply_thread_limit
from elasticthought.queue.context import JobContext, set_parent_death_signal
from elasticthought.queue.limits import apply_job_limits
from elasticthought.queue.registry import JobError, load_target


def _die_with_group() -> None:
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(137)


def _watch_parent(commands: Connection, parent_pid: int, ctx: JobContext) -> None:
    """Obey commands from the worker; end the whole group when the worker is gone."""
    while True:
        try:
            if commands.poll(0.5):
                msg = commands.recv()
                if msg and msg[0] == "cancel":
                    ctx._set_cancelled()
        except (EOFError, OSError):
            _die_with_group()
        if os.getppid() != parent_pid:
            _die_with_group()


def child_main(
    target: str,
    job: dict,
    config: Config,
    store_url: str,
    blobs_url: str,
    work_dir: str,
    attempt: int,
    gpus: list[int],
    events: Connection,
    commands: Connection,
    parent_pid: int,
    cores: int = 1,
) -> None:
    """Entry point of the job's child process (warm and cold alike): `parent_pid` is the
    process that started it (the worker), or 0 for a fork server's child (its parent is
    whoever forked it; the fork server ends with the worker, and the pipes close with it)."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    set_parent_death_signal(signal.SIGKILL)
    if not parent_pid:
        parent_pid = os.getppid()
    if os.getppid() != parent_pid:
        _die_with_group()
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
    send_lock = threading.Lock()

    def send(msg: tuple) -> None:
        with send_lock:
            events.send(msg)

    ctx = JobContext(job, config, Path(work_dir), attempt, store_url, blobs_url, send, gpus)
    threading.Thread(
        target=_watch_parent, args=(commands, parent_pid, ctx), name="et-parent-watch", daemon=True
    ).start()
    try:
        result = run_job(target, ctx, cores)
        ctx.flush()
        send(("result", result))
    except JobError as exc:
        ctx.flush()
        send(("error", str(exc) or type(exc).__name__, ""))
    except BaseException as exc:  # noqa: BLE001 - everything a job does is reported
        ctx.flush()
        message = str(exc)
        reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        send(("error", reason, traceback.format_exc()))
    finally:
        for stream in (sys.stdout, sys.stderr):  # what it printed, before the worker ends it
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        events.close()


#: What a pre-started process says once it waits for its job.
STANDBY_READY = ("ready",)


def standby_main(events: Connection, commands: Connection) -> None:
    """Entry point of a pre-started job process (a fork of the warm fork server made while the
    worker was busy, `execution.Standby`): it leads its own process group and dies with its
    parent from the start, waits for its one job on `commands` (`child_main`'s arguments
    but the pipes) and runs it as `child_main`. A closed pipe (the worker gone, or the
    process no longer wanted) ends it."""
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    set_parent_death_signal(signal.SIGKILL)
    try:
        events.send(STANDBY_READY)
        job = commands.recv()
    except (EOFError, OSError):
        os._exit(0)
    target, doc, config, store_url, blobs_url, work_dir, attempt, gpus, cores = job
    child_main(target, doc, config, store_url, blobs_url, work_dir, attempt, gpus, events,
               commands, 0, cores)  # fmt: skip


def run_job(target: str, ctx: JobContext, cores: int) -> dict:
    """Run the job: the single point where a job starts executing in its process. Per-job
    limits are applied here (its `cores` as thread counts), then the runner `target` runs.
    The process keeps the memory it frees for reuse (`engine.allocator`): it ends with the job."""
    apply_job_limits(ctx.job, ctx.config, ctx.gpus)
    keep_freed_memory()
    apply_thread_limit(cores)
    fn = load_target(target)
    result: Any = fn(ctx)
    if result is not None and not isinstance(result, dict):
        raise JobError(f"runner {target} returned {type(result).__name__}, not a dict")
    return result or {}
