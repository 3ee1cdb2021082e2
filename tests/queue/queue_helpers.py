"""Queue test helpers: `elasticthought worker` processes, job submission, bounded waits.

Jobs are `queue-test` documents (tests/queue/runner.py), run in real child processes.
Every fixture here uses the shared parametrized `store` fixture, so each test runs on both
backends (sqlite and PouchDB Server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tests.queue.runner  # noqa: F401 - registers the queue-test runner
from elasticthought.config import Config, config_from_env
from elasticthought.queue import list_workers
from elasticthought.store import Store
from tests.queue.runner import TEST_TYPE

LEASE = 2.0
RUNNER_MODULES = "tests.queue.runner"
REPO = Path(__file__).resolve().parents[2]


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """Whether a process runs (a zombie nobody reaped yet counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def submit(store: Store, owner: str = "user:a", **fields: Any) -> str:
    """Create a pending queue-test job; return its id."""
    doc = {
        "type": TEST_TYPE,
        "user-id": owner,
        "processing-state": "pending",
        "created-at": time.time(),
        **fields,
    }
    return store.create(doc)["_id"]


def state_of(store: Store, job_id: str) -> str:
    return store.get(job_id)["processing-state"]


def wait_state(store: Store, job_id: str, states: str | tuple, timeout: float = 30.0) -> dict:
    wanted = (states,) if isinstance(states, str) else states

    def check() -> dict | None:
        doc = store.get(job_id)
        return doc if doc["processing-state"] in wanted else None

    return wait_for(check, timeout, f"{job_id} to be {'/'.join(wanted)}")


def read_pids(path: Path) -> tuple[int, int]:
    child, grandchild = path.read_text().split()
    return int(child), int(grandchild)


def pool_config(store: Store, data_dir: Path, workers: int = 1, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "store": store_url_of(store),
        "workers": workers,
        "lease_seconds": LEASE,
        "grace_seconds": 1.0,
        "runner_modules": RUNNER_MODULES,
        "engines": "torch",
        "gpus": "",
    }
    values.update(overrides)
    return config_from_env(**values)


def store_url_of(store: Store) -> str:
    return store.url


class WorkerProcess:
    """An `elasticthought worker` process on the shared store."""

    def __init__(self, tmp_path: Path, store_url: str, name: str, workers: int) -> None:
        self.name = name
        self.store_url = store_url
        self.data_dir = tmp_path / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = tmp_path / f"{name}.log"
        args = [
            sys.executable, "-m", "elasticthought", "worker",
            "--store", store_url,
            "--data-dir", str(self.data_dir),
            "--workers", str(workers),
            "--lease-seconds", str(LEASE),
            "--grace-seconds", "1",
            "--runner-modules", RUNNER_MODULES,
            "--worker-id", name,
            "--engines", "torch",
            "--gpus", "",
        ]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, store: Store, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.name} exited:\n{self.log()[-3000:]}")
            return any(w["worker-id"] == self.name and w["alive"] for w in list_workers(store))

        wait_for(ready, timeout, f"worker {self.name} to announce itself", interval=0.1)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
