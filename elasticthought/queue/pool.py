"""`WorkerPool`: N worker threads fed by a follower of the store's changes feed.

One pool per process (`elasticthought serve` or `worker`). Threads:
- the follower reads the changes feed and keeps an index of the non-final job documents;
- N workers pick the next job in fair order (fairness.py), claim it by compare-and-swap and
  run it in a child process (execution.py), forked from a warm fork server (warm.py); each
  job holds its cores of the worker's CPU budget while it runs (budget.py);
- a user's running jobs are capped (`--max-running-jobs-per-user`) across every pool sharing
  the store: a pool picks no job of an owner at the cap (its index holds every processing job
  of every node), and after a claim it waits until the claim came back on its own changes
  feed (so every claim written before it is in its index too) and undoes it, before the job
  starts, when the owner's other processing jobs already fill the cap. Of two nodes racing
  for an owner's last slot, the later writer always sees the earlier claim, so a job never
  starts beyond the cap; a claim beyond it stays `processing` only for that feed round trip
  (a fraction of a second; `CAP_CONFIRM_TIMEOUT` at most). When both racers back off, the
  owner's next job starts on the next pick, after a random pause;
- the keeper writes this process's presence heartbeat, returns jobs whose lease expired to
  `pending` (whoever held them) and cancels pending jobs whose cancel was requested.
Why a pending job waits is worked out when the API answers (reasons.py), from an index like
this pool's; nothing writes it into the documents.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter

from elasticthought.config import Config
from elasticthought.documents.fields import (
    ATTEMPTS,
    CANCEL_REQUESTED,
    CLAIM_ID,
    LEASE_EXPIRES,
    PROCESSING_STATE,
    STARTED_AT,
)
from elasticthought.documents.states import ACTIVE
from elasticthought.engine.registry import ALWAYS_AVAILABLE
from elasticthought.queue import control, presence
from elasticthought.queue.budget import CpuBudget, os_cpus
from elasticthought.queue.capabilities import missing, probe_capabilities
from elasticthought.queue.execution import JobRun, RunHandle, Standby
from elasticthought.queue.fairness import owner_of
from elasticthought.queue.reasons import startable_order
from elasticthought.queue.registry import (
    PENDING,
    PROCESSING,
    RUNNERS,
    import_available_runner_modules,
    runner_for,
)
from elasticthought.queue.warm import prestart
from elasticthought.store.base import ID_SEP, NotFound, Store, StoreError

log = logging.getLogger(__name__)

FEED_TIMEOUT = 1.0  # longpoll wait of the follower (bounds how long stop() waits for it)
# Longest wait for a claim to come back on this pool's own changes feed (the cap's check).
CAP_CONFIRM_TIMEOUT = 5.0
PRUNE_EVERY = 300.0


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class JobIndex:
    """Pending and processing job documents, as last seen on the feed."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pending: dict[str, dict] = {}
        self.processing: dict[str, dict] = {}
        self.last_started: dict[str, float] = {}
        self.version = 0  # counts changes (answers cache what they derive from one version)

    def apply(self, doc_id: str, doc: dict | None) -> None:
        with self.cond:
            self.version += 1
            self.pending.pop(doc_id, None)
            self.processing.pop(doc_id, None)
            state = doc.get(PROCESSING_STATE) if doc else None
            if doc is not None and state == PENDING:
                self.pending[doc_id] = doc
                self.cond.notify_all()
            elif doc is not None and state == PROCESSING:
                self.processing[doc_id] = doc
                owner = owner_of(doc)
                started = float(doc.get(STARTED_AT) or 0)
                if started > self.last_started.get(owner, 0.0):
                    self.last_started[owner] = started

    def running_by_owner(self) -> Counter:
        return Counter(owner_of(d) for d in self.processing.values())


class WorkerPool:
    """Job workers of one process: `start()`, `stop(grace)`."""

    def __init__(
        self, config: Config, store: Store, blobs: object | None = None, workers: int | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.blobs = blobs
        self.threads_wanted = config.workers if workers is None else workers
        self.worker_id = config.worker_id or default_worker_id()
        # Children open their own connections from the configured URLs (credentials kept).
        self.store_url = config.store_url
        self.blobs_url = config.blobs_url
        self.lease = float(config.lease_seconds)
        self.index = JobIndex()
        self.capabilities: dict = {"engines": [], "gpus": []}
        self.running: dict[str, RunHandle] = {}
        self.reserved: dict[str, str] = {}  # picked, not yet ended: job id -> owner
        self.cap = max(0, int(config.max_running_jobs_per_user or 0))
        self._claims_seen: dict[str, threading.Event] = {}  # claim id -> back on our feed
        self.free_gpus: list[int] = []
        self.budget = CpuBudget(config.cpus or os_cpus(), self.threads_wanted)
        self.warm_ready = threading.Event()  # the warm fork server is up (or not used)
        self.warm_ready.set()
        self.started_at = 0.0
        self.stopping = threading.Event()
        self.halt = threading.Event()
        self.stop_deadline = [float("inf")]
        self.caught_up = threading.Event()
        self.jobs_run = 0
        self.standbys: list[Standby] = []  # each worker thread's pre-started job process
        self._threads: list[threading.Thread] = []
        self._service: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._presence_lock = threading.Lock()
        self._gone = False  # presence removed: write no more heartbeats

    # Life cycle -----------------------------------------------------------------------------

    def start(self) -> WorkerPool:
        """Import runner modules, probe capabilities, announce presence, start the threads."""
        for name in import_available_runner_modules(self.config.runner_modules):
            log.warning("runner module %s not found", name)
        configured = bool(self.config.engines.strip()) and bool(self.config.gpus.strip())
        if configured:
            self.capabilities = probe_capabilities(self.config)
        else:  # probing Caffe and CUDA takes seconds: start with torch on CPU, add the rest
            self.capabilities = {"engines": list(ALWAYS_AVAILABLE), "gpus": self.config.gpu_ids}
            if self.config.engines.strip():
                self.capabilities["engines"] = sorted(
                    {e.strip() for e in self.config.engines.split(",") if e.strip()}
                )
        self.free_gpus = list(self.capabilities.get("gpus", []))
        if self.config.warm_jobs:
            self.warm_ready = prestart(self.config.runner_modules, self.stopping)
        self.started_at = time.time()
        self._heartbeat()
        self._service = [
            threading.Thread(target=self._follow, name="et-queue-follower", daemon=True),
            threading.Thread(target=self._keep, name="et-queue-keeper", daemon=True),
        ]
        if not configured:
            self._service.append(
                threading.Thread(target=self._probe, name="et-queue-probe", daemon=True)
            )
        self._threads = [
            threading.Thread(target=self._work, args=(n,), name=f"et-worker-{n}", daemon=True)
            for n in range(self.threads_wanted)
        ]
        for thread in self._service + self._threads:
            thread.start()
        log.info(
            "worker %s: %d thread(s), engines %s, gpus %s",
            self.worker_id,
            self.threads_wanted,
            self.capabilities["engines"],
            self.capabilities["gpus"],
        )
        return self

    def _probe(self) -> None:
        """Learn the engines and GPUs this worker offers, then announce them."""
        try:
            caps = probe_capabilities(self.config)
        except Exception:  # noqa: BLE001 - keep what we have
            log.exception("probing capabilities")
            return
        with self.index.cond:
            with self._lock:
                added = [g for g in caps["gpus"] if g not in self.capabilities["gpus"]]
                self.free_gpus.extend(added)
                self.capabilities = caps
            self.index.cond.notify_all()
        log.info("worker %s offers engines %s, gpus %s", self.worker_id, caps["engines"],
                 caps["gpus"])  # fmt: skip
        try:
            self._heartbeat()
        except StoreError as exc:
            log.warning("presence: %s", exc)

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; running jobs get `grace` seconds to finish, then go back to
        `pending` with their lease released. Removes this worker's presence document."""
        grace = self.config.grace_seconds if grace is None else float(grace)
        self.stop_deadline[0] = time.time() + max(0.0, grace)
        self.stopping.set()
        with self.index.cond:
            self.index.cond.notify_all()
        for thread in self._threads:
            thread.join(max(0.0, grace) + 15.0)
        self.halt.set()
        for thread in self._service:
            thread.join(FEED_TIMEOUT + 1.0)
        try:
            with self._presence_lock:
                self._gone = True
                presence.remove(self.store, self.worker_id)
        except StoreError as exc:
            log.warning("could not remove presence of %s: %s", self.worker_id, exc)

    def __enter__(self) -> WorkerPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def running_jobs(self) -> list[str]:
        with self._lock:
            return list(self.running)

    # Follower ------------------------------------------------------------------------------

    def _follow(self) -> None:
        since: str | None = None
        types = frozenset(RUNNERS)
        while not self.halt.is_set():
            if frozenset(RUNNERS) != types:  # a runner registered late: read everything again
                types = frozenset(RUNNERS)
                since = None
            try:
                page = self.store.changes(since, timeout=0.0 if since is None else FEED_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - the follower outlives store hiccups
                if self.halt.is_set():
                    return
                log.warning("changes feed: %s", exc)
                self.halt.wait(1.0)
                continue
            seen: set[str] = set()
            read: list[dict] = []
            failed = False
            for doc_id in page.ids:
                if doc_id in seen or doc_id.split(ID_SEP, 1)[0] not in RUNNERS:
                    continue
                seen.add(doc_id)
                try:
                    doc = self.store.get(doc_id)
                    self._saw(doc_id, doc)
                    read.append(doc)
                except NotFound:
                    self._saw(doc_id, None)
                except Exception as exc:  # noqa: BLE001
                    if self.halt.is_set():
                        return
                    log.warning("reading %s: %s", doc_id, exc)
                    failed = True
                    break
            if failed:
                self.halt.wait(1.0)
                continue  # read the same page again
            # Only once the whole page is in the index: a claim written before ours may be
            # listed after ours (at the sequence of its own later change).
            for doc in read:
                self._confirm_claim(doc)
            since = page.last_seq
            self.caught_up.set()

    def _saw(self, doc_id: str, doc: dict | None) -> None:
        self.index.apply(doc_id, doc)
        with self._lock:
            handle = self.running.get(doc_id)
        if handle is not None and doc is not None:
            handle.seen(doc)

    def _confirm_claim(self, doc: dict) -> None:
        """(Follower) a claim this pool waits for came back on the feed."""
        with self._lock:
            event = self._claims_seen.get(str(doc.get(CLAIM_ID) or ""))
        if event is not None:
            event.set()

    # Workers --------------------------------------------------------------------------------

    def running_owners(self) -> Counter:
        """(Under index.cond) running jobs per owner: every processing job the feed showed,
        and the jobs this pool picked but has not claimed yet."""
        running = self.index.running_by_owner()
        for doc_id, owner in self.reserved.items():
            if doc_id not in self.index.processing:
                running[owner] += 1
        return running

    def _pick(self) -> tuple[dict, list[int], int] | None:
        """The next job this pool can run (reserved for the caller), the GPUs and the cores it
        gets (a job waits while its cores are not free)."""
        with self.index.cond:
            order = startable_order(
                self.index.pending.values(),
                self.running_owners(),
                self.index.last_started,
                self.cap,
                {**self.index.pending, **self.index.processing},
            )
            for doc in order:
                doc_id = doc["_id"]
                runner = runner_for(doc.get("type"))
                if runner is None or doc_id in self.reserved:
                    continue
                try:
                    needs = runner.needs(doc)
                except Exception:  # noqa: BLE001 - a bad document must not stop the pool
                    log.exception("requirements of %s", doc_id)
                    continue
                if missing(self.capabilities, needs) is not None:
                    continue
                cores = self.budget.wanted(doc)
                with self._lock:
                    if needs["gpu"] > len(self.free_gpus) or not self.budget.take(cores):
                        continue
                    gpus = self.free_gpus[: needs["gpu"]]
                    del self.free_gpus[: needs["gpu"]]
                self.reserved[doc_id] = owner_of(doc)
                return doc, gpus, cores
        return None

    def _work(self, slot: int) -> None:
        thread_worker_id = f"{self.worker_id}/{slot}"
        while not self.stopping.is_set() and not self.warm_ready.wait(0.5):
            pass  # claim nothing before job processes can start
        standby = Standby(self.config.runner_modules) if self.config.warm_jobs else None
        if standby is not None:
            with self._lock:
                self.standbys.append(standby)
        try:
            self._work_loop(thread_worker_id, standby)
        finally:
            if standby is not None:
                standby.close()

    def _work_loop(self, thread_worker_id: str, standby: Standby | None) -> None:
        if standby is not None and not self.stopping.is_set():
            standby.prepare()
        while not self.stopping.is_set():
            picked = self._pick()
            if picked is None:
                with self.index.cond:
                    if not self.stopping.is_set():
                        self.index.cond.wait(1.0)
                continue
            doc, gpus, cores = picked
            try:
                self._claim_and_run(doc, gpus, cores, thread_worker_id, standby)
            except Exception:  # noqa: BLE001 - the worker lives on whatever a job does
                log.exception("worker %s: job %s", thread_worker_id, doc.get("_id"))
                self.halt.wait(0.5)
            finally:
                with self._lock:
                    self.free_gpus.extend(gpus)
                    self.free_gpus.sort()
                    self.budget.give_back(cores)
                with self.index.cond:
                    self.reserved.pop(doc["_id"], None)
                    self.index.cond.notify_all()  # freed cores: another job may start

    def _claim_and_run(
        self, doc: dict, gpus: list[int], cores: int, thread_worker_id: str,
        standby: Standby | None = None,
    ) -> None:  # fmt: skip
        doc_id = doc["_id"]
        if self.stopping.is_set() or self._needs_unseen_active_job(doc):
            return
        claimed = self._claim(doc, thread_worker_id)
        if claimed is None:
            try:
                self._saw(doc_id, self.store.get(doc_id))  # refresh: no longer ours to take
            except NotFound:
                self._saw(doc_id, None)
            return
        runner = runner_for(claimed.get("type"))
        if runner is None:
            return
        handle = RunHandle(doc_id, claimed[CLAIM_ID])
        with self._lock:
            self.running[doc_id] = handle
        self.index.apply(doc_id, claimed)
        log.info(
            "worker %s: running %s (attempt %s)", thread_worker_id, doc_id, claimed.get(ATTEMPTS)
        )
        try:
            run = JobRun(
                self.config,
                self.store,
                self.store_url,
                self.blobs_url,
                claimed,
                runner,
                handle,
                gpus,
                self.stopping,
                self.stop_deadline,
                cores,
                standby,
            )
            outcome = run.run()
            log.info(
                "worker %s: %s ended %s",
                thread_worker_id,
                doc_id,
                outcome.state or ("released" if outcome.released else "fenced"),
            )
        finally:
            with self._lock:
                self.running.pop(doc_id, None)
                self.jobs_run += 1

    def _needs_unseen_active_job(self, doc: dict) -> bool:
        """Whether a job `doc` needs, absent from the index (written after `doc`, or finished),
        is pending or processing in the store; it is then put in the index, so the next pick
        runs it first. Reads the store only for dependencies the feed has not shown active."""
        runner = runner_for(doc.get("type"))
        if runner is None:
            return False
        with self.index.cond:
            unseen = [
                dep_id
                for _, dep_id in runner.waits_for(doc)
                if dep_id not in self.index.pending and dep_id not in self.index.processing
            ]
        for dep_id in unseen:
            try:
                dep = self.store.get(dep_id)
            except NotFound:
                continue  # its runner reports the missing job
            except StoreError:
                log.warning("job %s: could not read the job it needs, %s", doc["_id"], dep_id)
                self.halt.wait(0.5)
                return True  # try again on the next pick
            if dep.get(PROCESSING_STATE) in ACTIVE:
                self._saw(dep_id, dep)
                return True
        return False

    def _claim(self, doc: dict, thread_worker_id: str) -> dict | None:
        """Claim `doc`; with a running-jobs cap, keep the claim only when the owner's other
        processing jobs (every claim written before this one included) leave room for it."""
        doc_id = doc["_id"]
        if not self.cap:
            return control.claim(self.store, doc_id, thread_worker_id, self.lease, seen=doc)
        claimed = control.claim(self.store, doc_id, thread_worker_id, self.lease, seen=doc)
        if claimed is None:
            return None
        claim_id = claimed[CLAIM_ID]
        event = threading.Event()
        with self._lock:
            self._claims_seen[claim_id] = event
        try:
            with self.index.cond:  # the follower may have applied it already
                back = self.index.processing.get(doc_id, {}).get(CLAIM_ID) == claim_id
            if not back and not event.wait(CAP_CONFIRM_TIMEOUT):
                log.warning("job %s: claim not back on the feed; checking the cap anyway", doc_id)
        finally:
            with self._lock:
                self._claims_seen.pop(claim_id, None)
        self.index.apply(doc_id, claimed)
        owner = owner_of(claimed)
        with self.index.cond:
            others = sum(
                1
                for other_id, other in self.index.processing.items()
                if other_id != doc_id and owner_of(other) == owner
            )
        if others < self.cap:
            return claimed
        log.info("job %s: %s already runs %d jobs (the cap); claim undone", doc_id, owner, others)
        control.unclaim(self.store, doc_id, claim_id)
        self.halt.wait(random.uniform(0.05, 0.5))  # racers back off at different times
        return None

    # Keeper ---------------------------------------------------------------------------------

    def _interval(self) -> float:
        return max(0.25, min(self.lease / 2.0, 5.0))

    def _heartbeat(self) -> None:
        with self._presence_lock:
            if not self._gone:
                self._write_presence()

    def _write_presence(self) -> None:
        presence.heartbeat(
            self.store,
            self.worker_id,
            self.capabilities,
            self.threads_wanted,
            self.running_jobs(),
            self.started_at,
            ttl=3 * self._interval() + 1.0,
            state="stopping" if self.stopping.is_set() else "running",
        )

    def _keep(self) -> None:
        last_prune = 0.0
        while not self.halt.wait(self._interval()):
            for task in (self._heartbeat, self._recover, self._cancel_asked):
                if self.halt.is_set():
                    return
                try:
                    task()
                except StoreError as exc:
                    log.warning("queue keeper: %s", exc)
                except Exception:  # noqa: BLE001
                    log.exception("queue keeper")
            if time.time() - last_prune > PRUNE_EVERY:
                last_prune = time.time()
                try:
                    presence.prune(self.store)
                except StoreError:
                    pass

    def _recover(self) -> None:
        """Return jobs whose lease expired to pending (any worker's, not our running ones)."""
        now = time.time()
        with self.index.cond:
            expired = [
                doc_id
                for doc_id, doc in self.index.processing.items()
                if float(doc.get(LEASE_EXPIRES) or 0) < now
            ]
        for doc_id in expired:
            with self._lock:
                if doc_id in self.running:
                    continue
            doc = control.recover_expired(self.store, doc_id, self.config.max_attempts)
            if doc is not None:
                log.warning(
                    "job %s: lease expired; now %s (attempts %s)",
                    doc_id,
                    doc.get(PROCESSING_STATE),
                    doc.get(ATTEMPTS),
                )
                self._saw(doc_id, doc)

    def _cancel_asked(self) -> None:
        """Cancel pending jobs whose cancel was requested."""
        with self.index.cond:
            asked = [d["_id"] for d in self.index.pending.values() if d.get(CANCEL_REQUESTED)]
        for doc_id in asked:
            control.cancel_pending(self.store, doc_id)
