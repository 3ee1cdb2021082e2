"""The worker pool in this process, running real job child processes, on both backends."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from elasticthought.queue import explain_pending, list_workers, register_runner, request_cancel
from elasticthought.queue.pool import WorkerPool
from elasticthought.queue.registry import unregister_runner
from tests.queue.queue_helpers import (
    pid_alive,
    pool_config,
    read_pids,
    submit,
    wait_for,
    wait_state,
)

FINAL = ("finished_successfully", "failed", "canceled")


def test_result_progress_and_failures_are_written(store, make_pool) -> None:
    make_pool(workers=2)
    ok = submit(store, sleep=1.2, burst=2000)
    expected = submit(store, action="error")
    unexpected = submit(store, action="crash")
    done = wait_state(store, ok, FINAL)
    assert done["processing-state"] == "finished_successfully"
    assert done["result"] == f"ran {ok}" and done["ran-attempt"] == 1
    assert done["last-iteration"] >= 2  # progress reached the document
    assert done["burst-step"] == 2000  # the latest value wins
    writes = int(done["_rev"].split("-")[0])
    assert writes < 20, f"{writes} writes for 2000+ progress reports: not rate-limited"
    assert Path(done["work-dir"]).is_dir()
    failed = wait_state(store, expected, FINAL)
    assert failed["processing-state"] == "failed"
    assert failed["processing-log"] == "the test job failed as asked"
    crashed = wait_state(store, unexpected, FINAL)
    assert crashed["processing-log"] == "ValueError: unexpected failure"


def test_a_failure_reason_names_no_server_path(store, make_pool) -> None:
    make_pool(workers=1)
    job = submit(store, action="oserror")
    log = wait_state(store, job, FINAL)["processing-log"]
    assert log == "FileNotFoundError: [Errno 2] No such file or directory: '<path>'", log


def test_abort_fails_the_job_and_the_same_worker_runs_the_next(store, make_pool) -> None:
    make_pool(workers=1)
    aborting = submit(store, action="abort")
    segv = submit(store, action="segv")
    after = submit(store)
    first = wait_state(store, aborting, FINAL)
    assert first["processing-state"] == "failed"
    assert "SIGABRT" in first["processing-log"]
    second = wait_state(store, segv, FINAL)
    assert "SIGSEGV" in second["processing-log"]
    third = wait_state(store, after, FINAL)
    assert third["processing-state"] == "finished_successfully"
    assert first["worker-id"] == second["worker-id"] == third["worker-id"]


def test_a_job_process_killed_from_outside_fails_with_the_reason(
    store, make_pool, tmp_path: Path
) -> None:
    make_pool(workers=1)
    pid_file = tmp_path / "pids"
    job_id = submit(store, sleep=60, gate=str(tmp_path / "never"), **{"pid-file": str(pid_file)})
    wait_for(pid_file.exists, 30, "the job to start")
    os.kill(read_pids(pid_file)[0], signal.SIGKILL)  # what the kernel's OOM killer does
    doc = wait_state(store, job_id, FINAL)
    assert doc["processing-state"] == "failed"
    assert doc["processing-log"] == "job process died: SIGKILL (killed: out of memory?)"


def test_cancel_of_a_running_job_ends_it_and_its_processes(
    store, make_pool, tmp_path: Path
) -> None:
    make_pool(workers=1)
    pid_file = tmp_path / "pids"
    never = str(tmp_path / "never")
    job_id = submit(store, grandchild=True, gate=never, sleep=60, **{"pid-file": str(pid_file)})
    wait_for(pid_file.exists, 30, "the job to start")
    child, grandchild = read_pids(pid_file)
    request_cancel(store, job_id)
    doc = wait_state(store, job_id, FINAL, timeout=2.0)
    assert doc["processing-state"] == "canceled"
    wait_for(lambda: not pid_alive(child) and not pid_alive(grandchild), 2.0, "processes to end")
    assert request_cancel(store, job_id) is None  # a final state is left alone
    assert state_after_cancel_of_pending(store) == "canceled"


def state_after_cancel_of_pending(store) -> str:
    job_id = submit(store, engine="nobody-has-this")
    request_cancel(store, job_id)
    return store.get(job_id)["processing-state"]


def test_owners_take_turns_and_keep_their_order(store, make_pool, tmp_path: Path) -> None:
    pool = make_pool(workers=1)
    gate = tmp_path / "gate"
    a_jobs = [submit(store, "user:a", gate=str(gate), sleep=30)]
    wait_state(store, a_jobs[0], "processing")
    a_jobs += [submit(store, "user:a") for _ in range(9)]
    b_jobs = [submit(store, "user:b") for _ in range(2)]
    wait_for(lambda: len(pool.index.pending) == 11, 10, "the pool to see every job")
    gate.touch()
    docs = {j: wait_state(store, j, FINAL) for j in a_jobs + b_jobs}
    started = sorted(docs, key=lambda j: docs[j]["started-at"])
    assert started.index(b_jobs[0]) < started.index(a_jobs[2])
    assert [j for j in started if j in a_jobs] == a_jobs
    assert [j for j in started if j in b_jobs] == b_jobs


def test_priority_goes_first_among_the_owners_jobs(store, make_pool, tmp_path: Path) -> None:
    pool = make_pool(workers=1)
    gate = tmp_path / "gate"
    blocker = submit(store, "user:a", gate=str(gate), sleep=30)
    wait_state(store, blocker, "processing")
    low = [submit(store, "user:a") for _ in range(3)]
    high = submit(store, "user:a", priority=5)
    wait_for(lambda: len(pool.index.pending) == 4, 10, "the pool to see every job")
    gate.touch()
    docs = {j: wait_state(store, j, FINAL) for j in [*low, high]}
    assert min(docs.values(), key=lambda d: d["started-at"])["_id"] == high


def test_a_job_no_worker_can_run_waits_with_the_reason(store, make_pool) -> None:
    pool = make_pool(workers=1)
    engine_job = submit(store, engine="tensorflow")
    gpu_job = submit(store, gpu=2)
    runnable = submit(store)
    assert wait_state(store, runnable, FINAL)["processing-state"] == "finished_successfully"

    def reason(job_id: str) -> str | None:
        return explain_pending(store, store.get(job_id), pool.index, cap=4)

    assert reason(engine_job) == "no live worker can run it: none offers engine 'tensorflow'"
    assert reason(gpu_job) == "no live worker can run it: none offers 2 GPUs"
    assert state_of(store, engine_job) == state_of(store, gpu_job) == "pending"
    assert "pending-reason" not in store.get(engine_job)  # answered, never written
    assert reason(runnable) is None  # not pending any more
    workers = list_workers(store)
    mine = [w for w in workers if w["worker-id"] == pool.worker_id]
    assert mine and mine[0]["alive"] and mine[0]["capabilities"]["engines"] == ["torch"]


def state_of(store, job_id: str) -> str:
    return store.get(job_id)["processing-state"]


def test_max_runtime_fails_the_job(store, make_pool, tmp_path: Path) -> None:
    make_pool(workers=1)
    pid_file = tmp_path / "pids"
    fields = {"max-runtime": 3, "pid-file": str(pid_file)}
    job_id = submit(store, sleep=60, grandchild=True, **fields)
    wait_for(pid_file.exists, 30, "the job to start")
    child, grandchild = read_pids(pid_file)
    doc = wait_state(store, job_id, FINAL)
    assert doc["processing-state"] == "failed"
    assert doc["processing-log"] == "exceeded max-runtime of 3 s"
    wait_for(lambda: not pid_alive(child) and not pid_alive(grandchild), 5, "processes to end")


def test_a_worker_that_lost_its_claim_kills_the_job_and_writes_nothing(
    store, make_pool, tmp_path: Path
) -> None:
    make_pool(workers=1)
    pid_file = tmp_path / "pids"
    never = str(tmp_path / "never")
    job_id = submit(store, gate=never, sleep=60, grandchild=True, **{"pid-file": str(pid_file)})
    wait_for(pid_file.exists, 30, "the job to start")
    child, grandchild = read_pids(pid_file)

    def steal(doc: dict) -> None:
        doc.update(
            {
                "worker-id": "someone-else/0",
                "claim-id": "stolen",
                "lease-expires": time.time() + 600,
            }
        )

    stolen = store.modify(job_id, steal)
    wait_for(lambda: not pid_alive(child) and not pid_alive(grandchild), 5, "processes to end")
    time.sleep(0.5)  # let a wrong late write (if any) land before checking there is none
    assert store.get(job_id)["_rev"] == stolen["_rev"]


def test_an_expired_lease_past_max_attempts_fails_the_job(store, make_pool) -> None:
    make_pool(workers=1, max_attempts=2)
    job_id = submit(store, engine="nobody-has-this")

    def lost_run(doc: dict) -> None:
        doc.update(
            {
                "processing-state": "processing",
                "worker-id": "gone/0",
                "claim-id": "x",
                "attempts": 2,
                "lease-expires": time.time() + 0.5,
            }
        )

    store.modify(job_id, lost_run)
    doc = wait_state(store, job_id, FINAL, timeout=15)
    assert doc["processing-state"] == "failed"
    assert "expired" in doc["processing-log"] and "2 attempts" in doc["processing-log"]


def test_stop_within_grace_lets_a_job_finish(store, make_pool) -> None:
    pool = make_pool(workers=1)
    job_id = submit(store, sleep=0.3)
    wait_state(store, job_id, ("processing",) + FINAL)
    pool.stop(30)
    assert state_of(store, job_id) == "finished_successfully"
    assert not [w for w in list_workers(store) if w["worker-id"] == pool.worker_id]


def test_a_runner_registered_after_start_gets_its_waiting_jobs(store, make_pool) -> None:
    make_pool(workers=1)
    job_id = store.create(
        {"type": "late-test", "user-id": "user:a", "processing-state": "pending", "created-at": 1}
    )["_id"]
    register_runner("late-test", "tests.queue.runner:run_test_job")
    try:
        doc = wait_state(store, job_id, FINAL)
    finally:
        unregister_runner("late-test")
    assert doc["processing-state"] == "finished_successfully"


def test_a_claim_past_the_running_cap_is_undone_before_the_job_starts(
    store, make_pool, tmp_path: Path, monkeypatch
) -> None:
    """Another node claimed the owner's last slot, which this pool's pick did not see yet (its
    view is made stale on purpose: the pick's cap test always says 'room'): the claim comes
    back on the feed with the other claim before it, so it is undone and the job never starts;
    once the other job ends, it runs."""
    from elasticthought.queue import control, reasons

    monkeypatch.setattr(reasons, "at_cap", lambda *args: False)
    other_node = submit(store, "user:a", sleep=30)
    assert control.claim(store, other_node, "other-node/0", lease_seconds=60) is not None
    output = tmp_path / "ran"
    make_pool(workers=1, max_running_jobs_per_user=1)
    job = submit(store, "user:a", output=str(output))
    # created (1), claimed (2), undone (3): the pool tried, and gave the job back
    wait_for(lambda: int(store.get(job)["_rev"].split("-")[0]) >= 3, 10, "a claim and its undo")
    time.sleep(1.0)
    assert not output.exists(), "a job past the cap started"
    doc = store.get(job)
    assert doc["processing-state"] == "pending" or "claim-id" in doc, doc
    claimed = store.get(other_node)
    assert control.finish(store, other_node, claimed["claim-id"], "finished_successfully", {})
    assert wait_state(store, job, FINAL)["processing-state"] == "finished_successfully"
    assert output.read_text().split() == [job]


def test_a_job_waits_pending_while_a_job_it_needs_is_unfinished(
    store, make_pool, tmp_path: Path
) -> None:
    """The older job needs the newer one (as a training job needs its dataset): the only
    worker runs the newer one first instead of holding itself while the other waits."""
    register_runner(
        "queue-dep-test",
        "tests.queue.runner:run_test_job",
        dependencies=lambda doc: [("queue test", doc["after"])] if doc.get("after") else [],
    )
    try:
        output = tmp_path / "order"
        gate = tmp_path / "gate"
        blocker = submit(store, "user:a", gate=str(gate), sleep=30)
        make_pool(workers=1)
        wait_state(store, blocker, "processing")
        needed_id = "queue-dep-test:user~a:later"  # made now, created after its dependent
        dependent = store.create(
            {"_id": "queue-dep-test:user~a:earlier", "type": "queue-dep-test",
             "user-id": "user:a", "processing-state": "pending", "created-at": time.time(),
             "after": needed_id, "output": str(output)}
        )["_id"]  # fmt: skip
        store.create(
            {"_id": needed_id, "type": "queue-dep-test", "user-id": "user:a",
             "processing-state": "pending", "created-at": time.time() + 1,
             "output": str(output)}
        )  # fmt: skip
        gate.touch()
        wait_state(store, dependent, FINAL)
        assert output.read_text().split() == [needed_id, dependent]
    finally:
        unregister_runner("queue-dep-test")


def test_a_needed_job_the_feed_has_not_shown_yet_is_read_from_the_store(
    store, tmp_path: Path
) -> None:
    """The pick saw the dependent before the feed brought the job it needs (the deterministic
    form of the race above): before claiming, the pool reads that job, finds it unfinished,
    indexes it and leaves the dependent pending; a finished or missing one does not hold it."""
    register_runner(
        "queue-dep-test",
        "tests.queue.runner:run_test_job",
        dependencies=lambda doc: [("queue test", dep) for dep in doc.get("after", [])],
    )
    try:
        pool = WorkerPool(pool_config(store, tmp_path / "pool"), store)  # not started: no feed
        needed = store.create(
            {"_id": "queue-dep-test:user~a:needed", "type": "queue-dep-test",
             "user-id": "user:a", "processing-state": "pending", "created-at": time.time()}
        )  # fmt: skip
        done = store.create(
            {"_id": "queue-dep-test:user~a:done", "type": "queue-dep-test",
             "user-id": "user:a", "processing-state": "finished_successfully"}
        )  # fmt: skip
        missing = "queue-dep-test:user~a:missing"
        dependent = {"_id": "queue-dep-test:user~a:dependent", "type": "queue-dep-test",
                     "user-id": "user:a", "processing-state": "pending",
                     "after": [done["_id"], missing, needed["_id"]]}  # fmt: skip
        assert pool._needs_unseen_active_job(dependent)
        assert needed["_id"] in pool.index.pending
        ready = {**dependent, "after": [done["_id"], missing]}
        assert not pool._needs_unseen_active_job(ready)
    finally:
        unregister_runner("queue-dep-test")
