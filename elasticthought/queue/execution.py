"""Running one claimed job: its child process, lease renewal, progress, cancel, limits, end.

The worker thread that claimed the job stays here until the job ends. It starts the child
(hands the job to the process it pre-started, `Standby`, or forks or spawns one), forwards
progress to the document at most once a second, renews the lease, and ends the child's whole
process group on cancel, max-runtime, shutdown past grace, or lost lease; the ended process is
reaped in the background.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from elasticthought.config import Config
from elasticthought.documents.fields import (
    ATTEMPTS,
    CANCEL_REQUESTED,
    LEASE_EXPIRES,
    PROCESSING_LOG,
)
from elasticthought.documents.status import writable
from elasticthought.queue import control
from elasticthought.queue.child import child_main
from elasticthought.queue.context import job_work_dir, kill_group
from elasticthought.queue.limits import explain_failure, max_runtime
from elasticthought.queue.registry import CANCELED, FAILED, FINISHED, Runner
from elasticthought.queue.warm import cold_context, warm_context
from elasticthought.store.base import Store, StoreError

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL = 1.0  # seconds between progress writes to the job document
CANCEL_GRACE = 0.5  # seconds a child gets to stop by itself after a cancel request
TICK = 0.1
REAP_SECONDS = 5.0  # how long a reaper waits for a killed job process to be gone
STANDBY_START_SECONDS = 60.0  # how long a pre-started job process may take to come up


@dataclass
class Outcome:
    """How a job ended, seen from its worker."""

    state: str | None  # final state to write; None = write nothing (fenced) or released
    fields: dict[str, Any] = field(default_factory=dict)
    released: bool = False


@dataclass
class RunHandle:
    """The pool's view of a running job (the follower pokes it when the document changes)."""

    job_id: str
    claim_id: str
    cancel: threading.Event = field(default_factory=threading.Event)

    def seen(self, doc: dict) -> None:
        if doc.get(CANCEL_REQUESTED):
            self.cancel.set()
        if not control.holds(doc, self.claim_id):
            self.cancel.set()  # lost or ended elsewhere: renewal confirms and fences


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "job process vanished"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        extra = " (killed: out of memory?)" if -code == signal.SIGKILL else ""
        return f"job process died: {name}{extra}"
    return f"job process exited with code {code} without a result"


def _json_safe(fields: dict) -> dict:
    try:
        json.dumps(fields)
        return fields
    except (TypeError, ValueError):
        return json.loads(json.dumps(fields, default=str))


def _reap(proc: Any, events: Any, commands: Any) -> None:
    proc.join(REAP_SECONDS)
    events.close()
    commands.close()
    if proc.exitcode is not None:
        proc.close()


def _reap_later(proc: Any, events: Any, commands: Any) -> None:
    """Collect an ended (killed) job process in the background: the worker goes on to its
    next job while the kernel tears the old one down."""
    threading.Thread(
        target=_reap, args=(proc, events, commands), name="et-job-reaper", daemon=True
    ).start()


def start_job_process(
    ctx: Any, target: Any, name: str, args: tuple, tail: tuple = ()
) -> tuple[Any, Any, Any]:
    """Start `target(*args, events pipe, commands pipe, *tail)` in its own process group:
    (process, events reader, commands writer). Raises when it cannot start (pipes closed)."""
    events_r, events_w = ctx.Pipe(duplex=False)
    commands_r, commands_w = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=target, name=name, args=(*args, events_w, commands_r, *tail))
    try:
        proc.start()
    except Exception:
        events_r.close()
        commands_w.close()
        raise
    finally:
        events_w.close()
        commands_r.close()
    try:
        os.setpgid(proc.pid, proc.pid)
    except OSError:
        pass
    return proc, events_r, commands_w


class Standby:
    """One job process forked ahead of time from the warm fork server, per worker thread.

    Forking costs tens of milliseconds (the fork server's address space holds the engine);
    with a process waiting (`child.standby_main`), a claimed job starts as soon as its
    arguments are sent, and the next one is forked in the background while the job runs.
    Each process still runs exactly one job. `take()` hands the waiting process over (waiting
    for a fork still under way) and starts forking the next; `close()` ends the one waiting."""

    def __init__(self, runner_modules: str) -> None:
        self.runner_modules = runner_modules
        self._lock = threading.Lock()
        self._ready: threading.Event | None = None
        self._held: tuple[Any, Any, Any] | None = None
        self._closed = False

    def prepare(self) -> None:
        """Fork the next waiting process in the background (unless one is ready or coming)."""
        with self._lock:
            if self._closed or self._ready is not None:
                return
            ready = self._ready = threading.Event()
        threading.Thread(target=self._fork, args=(ready,), name="et-standby", daemon=True).start()

    def _fork(self, ready: threading.Event) -> None:
        from elasticthought.queue.child import STANDBY_READY, standby_main

        held = None
        try:
            ctx = warm_context(self.runner_modules)
            held = start_job_process(ctx, standby_main, "et-job", ())
            proc, events_r, _ = held
            # Ready once it waits for its job (its start-up done), not merely forked.
            if not events_r.poll(STANDBY_START_SECONDS) or events_r.recv() != STANDBY_READY:
                raise RuntimeError("the pre-started job process did not come up")
        except Exception as exc:  # noqa: BLE001 - the job forks its own process instead
            log.warning("pre-starting a job process: %s", exc)
            if held is not None:
                _end(*held)
                held = None
        with self._lock:
            if self._closed and held is not None:
                _end(*held)
                held = None
            self._held = held
            ready.set()

    def waiting_pid(self) -> int | None:
        """The pid of the process waiting for its job (None while there is none ready)."""
        with self._lock:
            return self._held[0].pid if self._held is not None else None

    def take(self, timeout: float = 30.0) -> tuple[Any, Any, Any] | None:
        """The waiting process (process, events pipe, commands pipe), or None when there is
        none (not prepared, or its fork failed or died); the next one is forked meanwhile."""
        with self._lock:
            ready = self._ready
        if ready is None or not ready.wait(timeout):
            return None
        with self._lock:
            held, self._held, self._ready = self._held, None, None
        self.prepare()
        if held is not None and not held[0].is_alive():
            _end(*held)
            return None
        return held

    def close(self) -> None:
        """End the waiting process (and any being forked once it is there)."""
        with self._lock:
            self._closed = True
            held, self._held = self._held, None
        if held is not None:
            _end(*held)


def _end(proc: Any, events: Any, commands: Any) -> None:
    kill_group(proc.pid)
    _reap_later(proc, events, commands)


@dataclass
class _Watch:
    """What the worker knows about a running child while it watches it."""

    max_runtime: float
    started: float = field(default_factory=time.monotonic)
    progress: dict[str, Any] = field(default_factory=dict)  # reported, latest values win
    dirty: bool = False  # progress not yet written to the document
    last_write: float = field(default_factory=time.monotonic)
    last_renew: float = field(default_factory=time.monotonic)
    message: tuple | None = None  # the child's last word: ("result", ...) or ("error", ...)
    kill_at: float | None = None
    ending: Outcome | None = None  # decided by the worker: cancel, max-runtime, shutdown
    events_open: bool = True

    def _take(self, msg: tuple) -> None:
        if msg[0] == "progress":
            self.progress.update(writable(msg[1]))
            self.dirty = True
        else:
            self.message = msg

    def receive(self, events: Any) -> None:
        """Take every report waiting in the events pipe."""
        try:
            while events.poll():
                self._take(events.recv())
        except (EOFError, OSError):
            self.events_open = False

    def drain(self, events: Any) -> None:
        """What the child said before it ended."""
        try:
            while self.events_open and events.poll():
                self._take(events.recv())
        except (EOFError, OSError):
            pass


class JobRun:
    """One attempt of one job, from claim to final write."""

    def __init__(
        self,
        config: Config,
        store: Store,
        store_url: str,
        blobs_url: str,
        doc: dict,
        runner: Runner,
        handle: RunHandle,
        gpus: list[int],
        stopping: threading.Event,
        stop_deadline: list[float],
        cores: int = 1,
        standby: Standby | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.store_url = store_url
        self.blobs_url = blobs_url
        self.doc = doc
        self.runner = runner
        self.handle = handle
        self.gpus = gpus
        self.stopping = stopping
        self.stop_deadline = stop_deadline
        self.cores = cores
        self.standby = standby
        self.lease = float(config.lease_seconds)
        self.renew_every = max(0.2, min(self.lease / 4.0, 5.0))
        # Stop the job this long before the lease we hold runs out (clock skew between nodes).
        self.fence_margin = min(self.lease / 8.0, 2.0)
        self.lease_held_until = float(doc.get(LEASE_EXPIRES) or time.time() + self.lease)

    # The steps of one attempt (named as rq names them) -------------------------------------

    def run(self) -> Outcome:
        """Start the child, watch it until it ends, write how it ended."""
        started = self.prepare_job_execution()
        if isinstance(started, Outcome):
            return self.handle_job_end(started)
        proc, events, commands = started
        try:
            outcome = self.perform_job(proc, events, commands)
        finally:
            kill_group(proc.pid)  # its processes end before the job's end is written
            _reap_later(proc, events, commands)
        return self.handle_job_end(outcome)

    def prepare_job_execution(self) -> tuple[Any, Any, Any] | Outcome:
        """Start the job's child (the worker's pre-started process, a fork of the warm fork
        server, or spawned cold) in its own process group: (process, events pipe, commands
        pipe), or the failed `Outcome` when it cannot start."""
        job_id = self.doc["_id"]
        work_dir = job_work_dir(self.config, job_id)
        warm = bool(self.config.warm_jobs)
        if warm and self.standby is not None:
            started = self._hand_over(str(work_dir))
            if started is not None:
                return started
        ctx = warm_context(self.config.runner_modules) if warm else cold_context()
        args = (
            self.runner.target,
            self.doc,
            self.config,
            self.store_url,
            self.blobs_url,
            str(work_dir),
            int(self.doc.get(ATTEMPTS) or 1),
            self.gpus,
        )
        tail = (0 if warm else os.getpid(), self.cores)
        try:
            return start_job_process(ctx, child_main, f"et-job-{job_id}", args, tail)
        except Exception as exc:  # noqa: BLE001
            return Outcome(FAILED, {PROCESSING_LOG: f"could not start job: {exc}"})

    def _hand_over(self, work_dir: str) -> tuple[Any, Any, Any] | None:
        """The job sent to the pre-started process; None when there is none to take it."""
        # A fork still under way is waited for less than a lease renewal interval (the job
        # is claimed); past that the job forks its own process.
        held = self.standby.take(self.renew_every) if self.standby is not None else None
        if held is None:
            return None
        proc, events, commands = held
        job = (self.runner.target, self.doc, self.config, self.store_url, self.blobs_url,
               work_dir, int(self.doc.get(ATTEMPTS) or 1), self.gpus, self.cores)  # fmt: skip
        try:
            commands.send(job)
        except (OSError, ValueError):
            _end(proc, events, commands)
            return None
        return held

    def perform_job(self, proc: Any, events: Any, commands: Any) -> Outcome:
        """Watch the running child: take its reports, stop it when it must stop, hold the
        lease; then how it ended (`handle_job_success` / `handle_job_failure`)."""
        watch = _Watch(max_runtime=self._max_runtime())
        while True:
            ready = wait([events, proc.sentinel] if watch.events_open else [proc.sentinel], TICK)
            if watch.events_open and events in ready:
                watch.receive(events)
            if watch.message is not None and not watch.events_open:
                break  # its last word said and its pipe closed: the child is only exiting
            if proc.sentinel in ready or (not watch.events_open and not proc.is_alive()):
                proc.join(1)
                break
            now = time.monotonic()
            if watch.ending is None and not self._decide_ending(watch, commands, now):
                return Outcome(None)  # the claim is lost: end the processes, write nothing
            if watch.kill_at is not None and now >= watch.kill_at:
                kill_group(proc.pid)
                proc.join(2)
                break
            if not self._keep_lease(watch, now):
                return Outcome(None)
        watch.drain(events)  # the child is gone (or killed): what it said last
        canceled = watch.ending is not None and watch.ending.state == CANCELED
        if watch.message and watch.message[0] == "result" and not canceled:
            return self.handle_job_success(watch)
        return self.handle_job_failure(watch, proc.exitcode)

    def _decide_ending(self, watch: _Watch, commands: Any, now: float) -> bool:
        """Whether the job must end now: a cancel request (the child gets `CANCEL_GRACE` to
        stop), max-runtime, or shutdown past its grace. False when the claim turned out lost."""
        if self.handle.cancel.is_set():
            doc = self._fresh()
            if doc is not None and not control.holds(doc, self.handle.claim_id):
                log.warning("job %s: claim lost, ending its processes", self.doc["_id"])
                return False
            if doc is None or doc.get(CANCEL_REQUESTED):
                watch.ending = Outcome(CANCELED, {PROCESSING_LOG: "canceled by request"})
                self._send(commands, ("cancel",))
                watch.kill_at = now + CANCEL_GRACE
            else:
                self.handle.cancel.clear()
        elif watch.max_runtime and now - watch.started > watch.max_runtime:
            watch.ending = Outcome(
                FAILED, {PROCESSING_LOG: f"exceeded max-runtime of {watch.max_runtime:g} s"}
            )
            watch.kill_at = now
        elif self.stopping.is_set() and time.time() >= self.stop_deadline[0]:
            watch.ending = Outcome(None, released=True)
            watch.kill_at = now
        return True

    def _keep_lease(self, watch: _Watch, now: float) -> bool:
        """Renew the lease (writing new progress with it) when due; False when the claim is
        lost or the lease ran out unrenewed (fencing)."""
        renew_due = now - watch.last_renew >= self.renew_every
        progress_due = watch.dirty and now - watch.last_write >= PROGRESS_WRITE_INTERVAL
        if renew_due or progress_due:
            if not self._renew(watch.progress if watch.dirty else {}):
                return False
            watch.last_renew = watch.last_write = time.monotonic()
            watch.dirty = False
        if time.time() > self.lease_held_until - self.fence_margin:
            log.warning("job %s: lease not renewed in time, fencing", self.doc["_id"])
            return False
        return True

    def handle_job_success(self, watch: _Watch) -> Outcome:
        """The child returned a result: it finished (reserved fields dropped)."""
        result = writable(watch.message[1] or {}) if watch.message else {}
        return Outcome(FINISHED, {**watch.progress, **result})

    def handle_job_failure(self, watch: _Watch, exitcode: int | None) -> Outcome:
        """The job was stopped (cancel, max-runtime, shutdown), raised, or its process died."""
        if watch.ending is not None:
            watch.ending.fields = {**watch.progress, **watch.ending.fields}
            return watch.ending
        message = watch.message
        if message and message[0] == "error":
            if message[2]:
                log.info("job %s failed:\n%s", self.doc["_id"], message[2])
            reason = explain_failure(message[1], None, self.config, bool(self.gpus))
            if reason != message[1]:  # the log keeps what the answer leaves out
                log.info("job %s failed: %s", self.doc["_id"], message[1])
            return Outcome(FAILED, {**watch.progress, PROCESSING_LOG: reason})
        reason = explain_failure(_describe_exit(exitcode), exitcode, self.config, bool(self.gpus))
        return Outcome(FAILED, {**watch.progress, PROCESSING_LOG: reason})

    def _max_runtime(self) -> float:
        return max_runtime(self.doc, self.config)

    def _send(self, commands: Any, msg: tuple) -> None:
        try:
            commands.send(msg)
        except (OSError, ValueError):
            pass

    def _fresh(self) -> dict | None:
        try:
            return self.store.get(self.doc["_id"])
        except StoreError:
            return None

    def _renew(self, progress: dict) -> bool:
        """Extend the lease (and write progress); False when the claim is lost."""
        try:
            doc = control.renew(
                self.store, self.doc["_id"], self.handle.claim_id, self.lease, _json_safe(progress)
            )
        except StoreError as exc:
            log.warning("job %s: lease renewal failed: %s", self.doc["_id"], exc)
            return True  # retried next tick; the local lease deadline fences if it persists
        if doc is None:
            log.warning("job %s: claim lost to another worker", self.doc["_id"])
            return False
        self.lease_held_until = float(doc.get(LEASE_EXPIRES) or 0)
        if doc.get(CANCEL_REQUESTED):
            self.handle.cancel.set()
        return True

    # The final write -----------------------------------------------------------------------

    def handle_job_end(self, outcome: Outcome) -> Outcome:
        """Write the job's end (fenced by its claim), retrying store errors while the lease
        lasts; a released job goes back to pending."""
        job_id = self.doc["_id"]
        claim_id = self.handle.claim_id
        fields = _json_safe(outcome.fields)
        for attempt in range(20):
            try:
                if outcome.released:
                    control.release(self.store, job_id, claim_id, fields)
                elif outcome.state is not None:
                    state = outcome.state
                    if state == FAILED:  # a failure while a cancel was asked is a cancel
                        doc = self._fresh()
                        if doc is not None and doc.get(CANCEL_REQUESTED):
                            state = CANCELED
                    if control.finish(self.store, job_id, claim_id, state, fields) is None:
                        log.warning("job %s: claim lost before its end was written", job_id)
                return outcome
            except StoreError as exc:
                if time.time() > self.lease_held_until:
                    log.error("job %s: could not write its end: %s", job_id, exc)
                    return outcome
                time.sleep(min(2.0, 0.1 * 2**attempt))
        return outcome
