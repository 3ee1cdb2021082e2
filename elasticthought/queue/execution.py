"""Running one claimed job: its child process, lease renewal, progress, cancel, limits, end.

The worker thread that claimed the job stays here until the job ends. It starts the child
(spawn), forwards progress to the document at most once a second, renews the lease, and ends
the child's whole process group on cancel, max-runtime, shutdown past grace, or lost lease.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
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
from elasticthought.queue.registry import CANCELED, FAILED, FINISHED, Runner
from elasticthought.store.base import Store, StoreError

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL = 1.0  # seconds between progress writes to the job document
CANCEL_GRACE = 0.5  # seconds a child gets to stop by itself after a cancel request
TICK = 0.1


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
        self.lease = float(config.lease_seconds)
        self.renew_every = max(0.2, min(self.lease / 4.0, 5.0))
        # Stop the job this long before the lease we hold runs out (clock skew between nodes).
        self.fence_margin = min(self.lease / 8.0, 2.0)
        self.lease_held_until = float(doc.get(LEASE_EXPIRES) or time.time() + self.lease)

    def run(self) -> Outcome:
        job_id = self.doc["_id"]
        work_dir = job_work_dir(self.config, job_id)
        ctx = multiprocessing.get_context("spawn")
        events_r, events_w = ctx.Pipe(duplex=False)
        commands_r, commands_w = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=child_main,
            name=f"et-job-{job_id}",
            args=(
                self.runner.target,
                self.doc,
                self.config,
                self.store_url,
                self.blobs_url,
                str(work_dir),
                int(self.doc.get(ATTEMPTS) or 1),
                self.gpus,
                events_w,
                commands_r,
                os.getpid(),
            ),
        )
        try:
            proc.start()
        except Exception as exc:  # noqa: BLE001
            events_r.close()
            commands_w.close()
            return self._end(Outcome(FAILED, {PROCESSING_LOG: f"could not start job: {exc}"}))
        events_w.close()
        commands_r.close()
        try:
            os.setpgid(proc.pid, proc.pid)
        except OSError:
            pass
        try:
            outcome = self._watch(proc, events_r, commands_w)
        finally:
            kill_group(proc.pid)
            proc.join(5)
            events_r.close()
            commands_w.close()
            if proc.exitcode is not None:
                proc.close()
        return self._end(outcome)

    # The watch loop ------------------------------------------------------------------------

    def _watch(self, proc: Any, events: Any, commands: Any) -> Outcome:
        started = time.monotonic()
        max_runtime = self._max_runtime()
        progress: dict[str, Any] = {}
        dirty = False
        last_write = time.monotonic()
        last_renew = time.monotonic()
        message: tuple | None = None
        kill_at: float | None = None
        ending: Outcome | None = None
        events_open = True
        while True:
            ready = wait([events, proc.sentinel] if events_open else [proc.sentinel], TICK)
            if events_open and events in ready:
                try:
                    while events.poll():
                        msg = events.recv()
                        if msg[0] == "progress":
                            progress.update(writable(msg[1]))
                            dirty = True
                        else:
                            message = msg
                except (EOFError, OSError):
                    events_open = False
            if proc.sentinel in ready or (not events_open and not proc.is_alive()):
                proc.join(1)
                break
            now = time.monotonic()
            if ending is None:
                if self.handle.cancel.is_set():
                    doc = self._fresh()
                    if doc is not None and not control.holds(doc, self.handle.claim_id):
                        log.warning("job %s: claim lost, ending its processes", self.doc["_id"])
                        return Outcome(None)
                    if doc is None or doc.get(CANCEL_REQUESTED):
                        ending = Outcome(CANCELED, {PROCESSING_LOG: "canceled by request"})
                        self._send(commands, ("cancel",))
                        kill_at = now + CANCEL_GRACE
                    else:
                        self.handle.cancel.clear()
                elif max_runtime and now - started > max_runtime:
                    ending = Outcome(
                        FAILED, {PROCESSING_LOG: f"exceeded max-runtime of {max_runtime:g} s"}
                    )
                    kill_at = now
                elif self.stopping.is_set() and time.time() >= self.stop_deadline[0]:
                    ending = Outcome(None, released=True)
                    kill_at = now
            if kill_at is not None and now >= kill_at:
                kill_group(proc.pid)
                proc.join(2)
                break
            renew_due = now - last_renew >= self.renew_every
            progress_due = dirty and now - last_write >= PROGRESS_WRITE_INTERVAL
            if renew_due or progress_due:
                if not self._renew(progress if dirty else {}):
                    return Outcome(None)
                last_renew = last_write = time.monotonic()
                dirty = False
            if time.time() > self.lease_held_until - self.fence_margin:
                log.warning("job %s: lease not renewed in time, fencing", self.doc["_id"])
                return Outcome(None)
        # The child is gone (or killed): drain what it said last.
        try:
            while events_open and events.poll():
                msg = events.recv()
                if msg[0] == "progress":
                    progress.update(writable(msg[1]))
                else:
                    message = msg
        except (EOFError, OSError):
            pass
        canceled = ending is not None and ending.state == CANCELED
        if message and message[0] == "result" and not canceled:
            result = writable(message[1] or {})
            return Outcome(FINISHED, {**progress, **result})
        if ending is not None:
            ending.fields = {**progress, **ending.fields}
            return ending
        if message and message[0] == "error":
            if message[2]:
                log.info("job %s failed:\n%s", self.doc["_id"], message[2])
            return Outcome(FAILED, {**progress, PROCESSING_LOG: message[1]})
        return Outcome(FAILED, {**progress, PROCESSING_LOG: _describe_exit(proc.exitcode)})

    def _max_runtime(self) -> float:
        try:
            value = float(self.doc.get("max-runtime") or 0)
        except (TypeError, ValueError):
            return 0.0
        return max(0.0, value)

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

    def _end(self, outcome: Outcome) -> Outcome:
        job_id = self.doc["_id"]
        claim_id = self.handle.claim_id
        fields = _json_safe(outcome.fields)
        for attempt in range(20):
            try:
                if outcome.released:
                    control.release(self.store, job_id, claim_id, fields)
                elif outcome.state is not None:
                    state = outcome.state
                    doc = self._fresh()
                    if state == FAILED and doc is not None and doc.get(CANCEL_REQUESTED):
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
