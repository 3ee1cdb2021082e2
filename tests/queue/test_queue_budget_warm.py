"""The CPU budget (cores shared among running jobs) and warm (forked) job processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from elasticthought.queue.budget import (
    SECONDS_PER_THREAD,
    CpuBudget,
    WorkThreads,
    os_cpus,
    thread_environment,
)
from tests.queue.queue_helpers import read_pids, submit, wait_for, wait_state
from tests.support.allocation import CHURN_MIB, round_pages


def test_budget_hands_out_whole_cores_never_more_than_it_has() -> None:
    budget = CpuBudget(total=2, slots=4)
    assert budget.share == 1
    assert budget.wanted({}) == 1
    assert budget.wanted({"cpus": 64}) == 2  # bounded by the cores
    assert budget.wanted({"cpus": "lots"}) == 1  # a bad value counts as not asked
    assert budget.take(1) and budget.take(1)
    assert not budget.take(1)
    assert budget.in_use() == 2
    budget.give_back(1)
    assert not budget.take(2) and budget.take(1)
    assert CpuBudget(total=4, slots=2).wanted({}) == 2
    assert thread_environment(3)["OMP_NUM_THREADS"] == "3"
    assert thread_environment(3)["OMP_WAIT_POLICY"] == "PASSIVE"
    assert os_cpus() >= 1


def test_batch_threads_follow_the_work_and_never_exceed_the_cores() -> None:
    threads = WorkThreads(cores=4)
    assert threads.threads(64) == 1  # nothing learnt yet: the first batch runs on one thread
    threads.observe(10, 2, 0.001)  # batches on more threads teach nothing
    assert threads.seconds_per_item is None
    item = SECONDS_PER_THREAD / 5  # an item is a fifth of a thread's worth
    threads.observe(10, 1, 10 * item)
    assert threads.threads(1) == 1 and threads.threads(4) == 1
    assert threads.threads(10) == 2 and threads.threads(15) == 3
    assert threads.threads(10_000) == 4  # bounded by the cores
    threads.observe(10, 1, 100 * item)  # a slow (cold) batch does not change the estimate
    assert threads.threads(10) == 2
    threads.observe(10, 1, 5 * item)  # a quicker one does
    assert threads.threads(10) == 1
    single = WorkThreads(cores=1)
    single.observe(1, 1, 60.0)
    assert single.threads(1000) == 1


def test_running_jobs_never_hold_more_cores_than_the_worker_has(
    make_pool, store, tmp_path: Path
) -> None:
    pool = make_pool(workers=3, cpus=2)
    gate = tmp_path / "gate"
    ids = [submit(store, gate=str(gate), sleep=60) for _ in range(3)]
    wait_for(lambda: len(pool.running_jobs()) == 2, 60, "two jobs to run")
    seen_max = 0
    for _ in range(20):  # the third waits for a core although a worker thread is free
        seen_max = max(seen_max, len(pool.running_jobs()), pool.budget.in_use())
        time.sleep(0.02)
    assert seen_max == 2
    assert pool.budget.in_use() <= pool.budget.total == 2
    gate.touch()
    docs = [wait_state(store, job_id, "finished_successfully", 60) for job_id in ids]
    assert all(d["omp-threads"] == "1" for d in docs)  # share: 2 cores / 3 workers -> 1 each
    assert [d["torch-threads"] for d in docs] == [1, 1, 1]  # torch: imported by the fork server
    asked = submit(store, cpus=16)
    doc = wait_state(store, asked, "finished_successfully", 60)
    assert doc["omp-threads"] == "2"  # asked 16, bounded by the worker's 2
    assert doc["torch-threads"] == 2
    assert pool.budget.in_use() == 0


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_a_crash_in_a_job_process_fails_that_job_only(
    make_pool, store, tmp_path: Path, warm: bool
) -> None:
    import os

    pool = make_pool(workers=1, warm_jobs=warm)
    pid_file = tmp_path / "pids"
    gate = tmp_path / "gate"
    job = submit(store, gate=str(gate), sleep=60, **{"pid-file": str(pid_file)})
    wait_for(pid_file.exists, 60, "the job's process to start")
    child, _ = read_pids(pid_file)
    parent = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1])
    if warm:  # forked by the warm fork server, not spawned by the worker
        assert parent != os.getpid()
        assert "forkserver" in Path(f"/proc/{parent}/cmdline").read_text()
    else:
        assert parent == os.getpid()
    gate.touch()
    wait_state(store, job, "finished_successfully", 60)
    crashed = submit(store, action="segv")
    aborted = submit(store, action="abort")
    assert "SIGSEGV" in wait_state(store, crashed, "failed", 60)["processing-log"]
    assert "SIGABRT" in wait_state(store, aborted, "failed", 60)["processing-log"]
    after = submit(store, **{"churn-mib": CHURN_MIB})
    done = wait_state(store, after, "finished_successfully", 60)
    assert done["ran-attempt"] == 1
    # a job's process reuses the memory it frees (engine.allocator), warm or cold
    assert done["churn-page-faults"] <= 2 * round_pages()
    # the pool counts a job after its final write, which the test may see first
    wait_for(lambda: pool.jobs_run == 4, 10, "the pool to count the four jobs it ran")


def test_a_warm_job_runs_in_a_process_started_before_it_was_claimed(
    make_pool, store, tmp_path: Path
) -> None:
    """Each worker thread keeps one job process waiting: a job submitted later runs in that
    process (forked by the warm fork server before the job existed), one job per process;
    stopping the pool ends the waiting one."""
    from multiprocessing import forkserver

    from tests.queue.queue_helpers import pid_alive

    pool = make_pool(workers=1)
    first = tmp_path / "first"
    wait_state(store, submit(store, **{"pid-file": str(first)}), "finished_successfully", 60)
    (standby,) = pool.standbys
    waiting = wait_for(standby.waiting_pid, 60, "a job process waiting for the next job")
    parent = int(Path(f"/proc/{waiting}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert parent == forkserver._forkserver._forkserver_pid
    second = tmp_path / "second"
    wait_state(store, submit(store, **{"pid-file": str(second)}), "finished_successfully", 60)
    assert read_pids(second)[0] == waiting  # the job ran in the process already waiting
    assert read_pids(first)[0] != waiting  # a fresh process per job
    following = wait_for(standby.waiting_pid, 60, "the next waiting process")
    assert following != waiting
    pool.stop(5)
    wait_for(lambda: not pid_alive(following), 30, "the waiting process to end")
