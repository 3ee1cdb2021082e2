"""`elasticthought autoscale` against a live `serve`: compose mode's command (printed, and issued
to a stand-in for the docker CLI), and local mode scaling real `elasticthought worker` processes
down while jobs run, without losing or repeating a job."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import requests

from elasticthought.store import open_store
from tests.queue.queue_helpers import REPO, submit, wait_for

SERVE_ARGS = ["--runner-modules", "elasticthought.jobs,tests.queue.runner"]
# The server runs in a temporary folder: the repository root puts `tests.queue.runner` in reach.
SERVE_ENV = {"PYTHONPATH": str(REPO)}

# A stand-in for the docker CLI (no Docker engine on the test machines): it records its
# arguments, one per line, and succeeds.
FAKE_DOCKER = """
import sys
with open(sys.argv[1], "a") as f:
    f.write("\\n".join(sys.argv[2:]) + "\\n---\\n")
"""


def autoscale(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "elasticthought", "autoscale", *args],
        cwd=str(REPO), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def pending_total(url: str, gpu: bool) -> int:
    data = requests.get(url + "/scaling", timeout=10).json()
    return next(r["pending"] for r in data["totals"] if r["gpu"] is gpu)


def test_compose_mode_prints_and_issues_the_scale_command(live_server, tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    for _ in range(5):
        submit(store, sleep=1)
    for _ in range(2):
        submit(store, sleep=1, gpu=True)
    srv = live_server(store=f"sqlite:///{db}", workers=0, args=SERVE_ARGS, env=SERVE_ENV)
    wait_for(lambda: pending_total(srv.url, False) == 5, 30, "5 pending CPU jobs in /scaling")
    assert pending_total(srv.url, True) == 2
    common = ["--scaling-url", srv.url + "/scaling", "--slots-per-worker", "2", "--max", "10"]

    done = autoscale("compose", "--once", "--dry-run", *common)
    assert done.returncode == 0, done.stderr
    expected = "docker compose -f docker/compose.yml up -d --no-deps --no-recreate --scale"
    assert done.stdout.strip() == f"{expected} worker=3 worker"  # ceil(5 / 2)

    done = autoscale("compose", "--once", "--dry-run", "--gpu", "--service", "gpu-worker", *common)
    assert done.stdout.strip() == f"{expected} gpu-worker=1 gpu-worker"  # ceil(2 / 2)

    done = autoscale("compose", "--once", "--dry-run", "--max", "2", *common[:-2])
    assert done.stdout.strip().endswith("--scale worker=2 worker")  # bounded by --max

    record = tmp_path / "docker-calls.txt"
    fake = tmp_path / "fake_docker.py"
    fake.write_text(FAKE_DOCKER)
    docker = f"{sys.executable} {fake} {record}"
    done = autoscale("compose", "--once", "--docker", docker, "--compose-file", "x.yml", *common)
    assert done.returncode == 0, done.stderr
    calls = record.read_text().split("---\n")
    assert calls[0].split("\n")[:-1] == [
        "compose", "-f", "x.yml", "up", "-d", "--no-deps", "--no-recreate",
        "--scale", "worker=3", "worker",
    ]  # fmt: skip


def test_signal_unreachable_changes_nothing(tmp_path: Path) -> None:
    from tests.support.pouchdb import free_port

    url = f"http://127.0.0.1:{free_port()}/scaling"
    done = autoscale("compose", "--once", "--dry-run", "--scaling-url", url)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "cannot read the scaling signal" in done.stderr


CHANGE_RE = re.compile(r"autoscale: workers (\w+) -> (\d+) \(running (\d+), pending (\d+)\)")


def test_local_mode_scales_down_while_jobs_run_and_every_job_ends_once(
    live_server, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    store_url = f"sqlite:///{db}"
    store = open_store(store_url)
    srv = live_server(store=store_url, workers=0, args=SERVE_ARGS, env=SERVE_ENV)
    output = tmp_path / "ran.txt"
    worker_args = (
        f"--store {store_url} --data-dir {tmp_path / 'workers'} --engines torch --gpus '' "
        "--runner-modules tests.queue.runner --grace-seconds 60 --lease-seconds 5"
    )
    # Staggered lengths: the demand falls while the long jobs still run.
    ids = [submit(store, output=str(output), sleep=s) for s in (1, 1.5, 2, 6, 9, 12)]
    log_path = tmp_path / "autoscale.log"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        scaler = subprocess.Popen(
            [sys.executable, "-m", "elasticthought", "autoscale", "local",
             "--scaling-url", srv.url + "/scaling", "--min", "0", "--max", "3",
             "--slots-per-worker", "1", "--cooldown", "1", "--interval", "0.3",
             "--drain-timeout", "90", "--worker-args", worker_args],
            cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:

        def final() -> list[dict] | None:
            docs = [store.get(i) for i in ids]
            done = all(d["processing-state"] in ("finished_successfully", "failed") for d in docs)
            return docs if done else None

        docs = wait_for(final, 180, "every job to end", interval=0.2)
        assert [d["processing-state"] for d in docs] == ["finished_successfully"] * 6
        assert sorted(output.read_text().split()) == sorted(ids), "a job ran twice or never"
        assert all(d["attempts"] == 1 for d in docs), [d.get("retry-reason") for d in docs]

        def log_text() -> str:
            return log_path.read_text(errors="replace")

        wait_for(lambda: re.search(r"workers \d+ -> 0 ", log_text()), 60, "scale to 0")
        changes = [
            tuple(int(x) if x.isdigit() else -1 for x in m) for m in CHANGE_RE.findall(log_text())
        ]
        assert max(c[1] for c in changes) == 3, log_text()  # 6 jobs, 1 slot each, --max 3
        down_while_running = [c for c in changes if 0 <= c[1] < c[0] and c[2] > 0]
        assert down_while_running, f"never scaled down while jobs ran:\n{log_text()}"
        stopped = re.findall(r"stopping worker pid (\d+)", log_text())
        assert len(stopped) == 3, log_text()
        wait_for(
            lambda: len(re.findall(r"drained and stopped", log_text())) == 3, 90, "workers exit"
        )
        assert "unasked" not in log_text()
    finally:
        if scaler.poll() is None:
            scaler.send_signal(signal.SIGTERM)
        rc = scaler.wait(120)
    assert rc == 0, log_path.read_text()


def test_local_target_drains_a_busy_worker_before_it_stops(tmp_path: Path) -> None:
    """Scaling to 0 while the only worker runs a job: SIGTERM, the job still finishes there
    (within --grace-seconds), once, and only then the worker exits."""
    import shlex

    from elasticthought.commands.autoscale import LocalTarget

    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    store = open_store(store_url)
    output = tmp_path / "ran.txt"
    job = submit(store, output=str(output), sleep=4)
    args = shlex.split(
        f"--store {store_url} --data-dir {tmp_path / 'w'} --engines torch --gpus '' "
        "--runner-modules tests.queue.runner --grace-seconds 60 --lease-seconds 5"
    )
    target = LocalTarget(1, args, drain_timeout=90)
    try:
        target.scale(1)
        (proc,) = target.active
        wait_for(lambda: store.get(job)["processing-state"] == "processing", 60, "the claim")
        target.scale(0)
        assert target.active == [] and list(target.draining) == [proc]
        assert proc.poll() is None  # still draining: the job runs on
        assert store.get(job)["processing-state"] == "processing"
        proc.wait(90)
        doc = store.get(job)
        assert doc["processing-state"] == "finished_successfully"
        assert doc["attempts"] == 1 and f"-{proc.pid}-" in doc["worker-id"]
        assert output.read_text().split() == [job]
        assert proc.returncode == 0
    finally:
        target.close()
