"""The queue across real `elasticthought worker` processes sharing one store."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.queue.queue_helpers import pid_alive, read_pids, submit, wait_for, wait_state


def test_two_processes_run_each_job_exactly_once(store, worker_process, tmp_path: Path) -> None:
    procs = [worker_process(name, workers=3) for name in ("node-a", "node-b")]
    for proc in procs:
        proc.wait_ready(store)
    output = tmp_path / "ran.txt"
    owners = ["user:a", "user:b", "user:c"]
    with ThreadPoolExecutor(6) as ex:
        ids = list(
            ex.map(lambda n: submit(store, owners[n % 3], output=str(output), sleep=0.1), range(30))
        )
    docs = [wait_state(store, job_id, ("finished_successfully", "failed"), 120) for job_id in ids]
    assert [d["processing-state"] for d in docs] == ["finished_successfully"] * 30
    lines = output.read_text().splitlines()
    assert len(lines) == 30
    assert sorted(lines) == sorted(ids)
    assert all(d["attempts"] == 1 for d in docs)
    nodes = {d["worker-id"].split("/")[0] for d in docs}
    assert nodes == {"node-a", "node-b"}, f"only {nodes} ran jobs"


def test_kill9_ends_the_job_processes_and_another_node_finishes_it(
    store, worker_process, tmp_path: Path
) -> None:
    procs = {name: worker_process(name, workers=1) for name in ("node-a", "node-b")}
    for proc in procs.values():
        proc.wait_ready(store)
    pid_file = tmp_path / "pids.txt"
    gate = tmp_path / "gate"
    job_id = submit(store, grandchild=True, gate=str(gate), sleep=60, **{"pid-file": str(pid_file)})
    wait_for(pid_file.exists, 60, "the job's child to start")
    child, grandchild = read_pids(pid_file)
    assert pid_alive(child) and pid_alive(grandchild)
    running = store.get(job_id)
    first = running["worker-id"].split("/")[0]
    procs[first].kill()
    wait_for(lambda: not pid_alive(child), 10, "the killed node's job child to end")
    wait_for(lambda: not pid_alive(grandchild), 10, "the job's grandchild to end")
    pid_file.unlink()
    gate.touch()
    done = wait_state(store, job_id, ("finished_successfully", "failed"), 60)
    assert done["processing-state"] == "finished_successfully", done.get("processing-log")
    assert done["worker-id"].split("/")[0] != first
    assert done["attempts"] == 2
    assert "expired" in done.get("retry-reason", "")


def test_sigterm_returns_a_running_job_to_pending(store, worker_process, tmp_path: Path) -> None:
    proc = worker_process("node-a", workers=1)
    proc.wait_ready(store)
    pid_file = tmp_path / "pids.txt"
    never = str(tmp_path / "never")
    job_id = submit(store, grandchild=True, sleep=60, gate=never, **{"pid-file": str(pid_file)})
    wait_for(pid_file.exists, 60, "the job's child to start")
    child, grandchild = read_pids(pid_file)
    assert proc.terminate() == 0, proc.log()[-3000:]
    doc = store.get(job_id)
    assert doc["processing-state"] == "pending"
    assert "worker-id" not in doc and "lease-expires" not in doc
    assert doc["attempts"] == 0
    wait_for(lambda: not pid_alive(child) and not pid_alive(grandchild), 10, "job processes end")
    assert not any(w["worker-id"] == "node-a" for w in _workers(store))
    assert os.path.exists(tmp_path / "node-a")


def _workers(store):
    from elasticthought.queue import list_workers

    return list_workers(store)
