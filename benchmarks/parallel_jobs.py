"""Parallel jobs benchmark: two LeNet training jobs at once on `serve --workers 2` vs one alone.

    python -m benchmarks.parallel_jobs [--iters 100] [--cpus 2]

One live `elasticthought serve --workers 2 --cpus N` (embedded store) trains the seed's MNIST
LeNet (golden digits as an LMDB datafile, the seed's prototxts, `--iters` iterations): first
one job alone, then two submitted together. Each job gets its share of the CPU budget (N / 2
cores). Printed: the time from submit until every job finished, and the ratio two / one
(target <= 1.2 on 2 cores: each job gets one core).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file: see benchmarks/_syspath.py
    import _syspath  # noqa: F401

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def run_jobs(user, solver_id: str, count: int) -> tuple[float, list[dict]]:  # noqa: ANN001
    """Seconds from submitting `count` jobs together until all finished, and the jobs."""
    from tests.e2e import training_support as ts

    t0 = time.perf_counter()
    ids = [ts.train(user, solver_id)["id"] for _ in range(count)]
    jobs = [ts.finished(user, job_id, timeout=600) for job_id in ids]
    return time.perf_counter() - t0, jobs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    from tests.api import helpers as h
    from tests.e2e import training_support as ts
    from tests.e2e.training_support import MNIST_TRAIN_LMDB
    from tests.support.server import LiveServer

    print(f"parallel jobs benchmark: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, "
          f"LeNet {args.iters} iterations, --cpus {args.cpus}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="et-bench-parallel-") as tmp_name:
        tmp = Path(tmp_name)
        served, work = tmp / "served", tmp / "work"
        served.mkdir()
        (work / "mnist_lmdb").mkdir(parents=True)
        shutil.copyfile(MNIST_TRAIN_LMDB / "data.mdb", work / "mnist_lmdb" / "data.mdb")
        h.tar_folder(served / "mnist_lmdb.tar.gz", work / "mnist_lmdb", "mnist_lmdb")
        shutil.copytree(h.SEED / "mnist", served / "mnist")
        files = h.FileServer(served)
        serve_args = ["--allow-private-urls", "--cpus", str(args.cpus)]
        srv = LiveServer(tmp / "srv", workers=2, args=serve_args).start()
        try:
            user = h.new_user(srv.url, "bench")
            solver = ts.mnist_solver(user, files, "LMDB", max_iter=args.iters, test_iter=1,
                                     test_interval=10 * args.iters, snapshot=0)  # fmt: skip
            run_jobs(user, solver["id"], 1)  # warm-up: the fork server, the caches
            one, _ = run_jobs(user, solver["id"], 1)
            two, jobs = run_jobs(user, solver["id"], 2)
        finally:
            srv.stop()
            files.close()
    workers = sorted({j.get("worker-id") for j in jobs})
    print(f"one LeNet job alone: {one:.2f} s; two submitted together: {two:.2f} s "
          f"(ran on {workers}); ratio two/one {two / one:.2f} (target <= 1.2)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
