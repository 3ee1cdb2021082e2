"""Queue fixtures: in-process pools and `elasticthought worker` processes on the test's store.

Every fixture uses the shared parametrized `store` fixture, so each test runs on both backends
(sqlite and PouchDB Server).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from elasticthought.queue import WorkerPool
from elasticthought.store import Store
from tests.queue.queue_helpers import WorkerProcess, pool_config, store_url_of


@pytest.fixture
def make_pool(store: Store, tmp_path: Path) -> Iterator[Callable[..., WorkerPool]]:
    """Start in-process pools on the test's store (stopped after the test)."""
    pools: list[WorkerPool] = []

    def make(workers: int = 1, **overrides: Any) -> WorkerPool:
        config = pool_config(store, tmp_path / f"pool{len(pools)}", workers, **overrides)
        pool = WorkerPool(config, store).start()
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.stop(0)


@pytest.fixture
def worker_process(store: Store, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `elasticthought worker` processes on the test's store (killed after the test)."""
    procs: list[WorkerProcess] = []

    def start(name: str, workers: int = 1) -> WorkerProcess:
        proc = WorkerProcess(tmp_path, store_url_of(store), name, workers)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.kill()
