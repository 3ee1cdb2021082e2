"""Queue benchmark: dispatch latency and throughput of the worker pool, on both store backends.

    python -m benchmarks.queue [--backends sqlite,couch] [--samples 20] [--jobs 40]

For each backend it measures, in the same run:
- the floor: the store's changes-wake latency (a write until a blocked `changes()` call returns);
- dispatch latency with an idle pool: a job's submit until its `started-at` (processing), p50/p95,
  printed next to the floor and as a ratio of it;
- throughput of trivial `queue-test` jobs (each a real child process) with 1, 2 and 4 workers,
  printed as jobs/s, as a ratio to 1 cold worker, and with the CPU time each job cost in its
  process (cold: the spawned interpreter; warm: the fork server's share too, forking included;
  a number the machine's other load hardly moves).
The couch backend runs a real PouchDB Server (tests/support/pouchdb.py).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file: see benchmarks/_syspath.py
    import _syspath  # noqa: F401

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from elasticthought.documents.fields import CREATED_AT, PROCESSING_STATE, USER_ID  # noqa: E402
from elasticthought.documents.states import FINAL_STATES, FINISHED, PENDING  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wake_latency(url: str, samples: int) -> list[float]:
    """Seconds from a write to the return of a `changes()` call blocked waiting for it."""
    from elasticthought.store import open_store

    writer, reader = open_store(url), open_store(url)
    since = reader.changes(None, 0).last_seq
    out = []
    for _ in range(samples):
        box: dict = {}
        ready = threading.Event()

        def wait(since: str = since, box: dict = box, ready: threading.Event = ready) -> None:
            ready.set()
            box["page"] = reader.changes(since, timeout=10)
            box["t"] = time.perf_counter()

        thread = threading.Thread(target=wait)
        thread.start()
        ready.wait()
        time.sleep(0.05)  # let the reader block
        t0 = time.perf_counter()
        writer.create({"type": "bench", "created-at": time.time()})
        thread.join()
        out.append(box["t"] - t0)
        since = box["page"].last_seq
    writer.close()
    reader.close()
    return out


def make_pool(url: str, data_dir: str, workers: int, warm: bool = True):  # noqa: ANN201
    from elasticthought.config import config_from_env
    from elasticthought.queue import WorkerPool
    from elasticthought.store import open_store

    config = config_from_env(
        data_dir=data_dir, store=url, workers=workers, lease_seconds=10.0,
        runner_modules="tests.queue.runner", engines="torch", gpus="", warm_jobs=warm,
        cpus=max(workers, os.cpu_count() or 1),
    )  # fmt: skip
    store = open_store(url)
    pool = WorkerPool(config, store).start()
    pool.caught_up.wait(30)
    return pool, store


def submit(store, **fields) -> str:  # noqa: ANN001
    doc = {"type": "queue-test", USER_ID: "user:bench", PROCESSING_STATE: PENDING,
           CREATED_AT: time.time(), **fields}  # fmt: skip
    return store.create(doc)["_id"]


def wait_final(store, ids: list[str], timeout: float = 300) -> list[dict]:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    docs = []
    for job_id in ids:
        while True:
            doc = store.get(job_id)
            if doc[PROCESSING_STATE] in FINAL_STATES:
                docs.append(doc)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{job_id} did not finish")
            time.sleep(0.01)
    return docs


def dispatch_latency(
    url: str, data_dir: str, samples: int, warm: bool = True
) -> tuple[list[float], list[float]]:
    """(submit until claimed, claimed until the job's runner began) per job, in seconds."""
    pool, store = make_pool(url, data_dir, 1, warm)
    out, start = [], []
    try:
        submit(store)  # the first job waits for the fork server to come up: not counted
        for _ in range(samples):
            t0 = time.time()
            job_id = submit(store)
            doc = wait_final(store, [job_id])[0]
            out.append(doc["started-at"] - t0)
            start.append(doc["began-at"] - doc["started-at"])
    finally:
        pool.stop(5)
        store.close()
    return out, start


def children_cpu() -> float:
    """CPU seconds of the job processes: this process's reaped children (cold jobs are its
    own children) plus the warm fork server's own and its reaped children's (warm jobs are
    forked, and reaped, by it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + forkserver_cpu()


def forkserver_cpu() -> float:
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if not pid:
        return 0.0
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime (fields 14-17 of proc(5); 11-14 here after the name)
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def throughput(
    url: str, data_dir: str, workers: int, jobs: int, warm: bool = True
) -> tuple[float, float]:
    """(jobs per second, CPU seconds per job spent in the job processes)."""
    pool, store = make_pool(url, data_dir, workers, warm)
    try:
        wait_final(store, [submit(store)])  # fork server up before the clock starts
        cpu0 = children_cpu()
        t0 = time.perf_counter()
        ids = [submit(store) for _ in range(jobs)]
        docs = wait_final(store, ids)
        elapsed = time.perf_counter() - t0
        cpu = (children_cpu() - cpu0) / jobs
        bad = [d for d in docs if d[PROCESSING_STATE] != FINISHED]
        if bad:
            raise RuntimeError(f"{len(bad)} jobs did not succeed: {bad[0].get('processing-log')}")
    finally:
        pool.stop(5)
        store.close()
    return jobs / elapsed, cpu


def run_backend(name: str, url_for, samples: int, jobs: int) -> None:  # noqa: ANN001
    with tempfile.TemporaryDirectory(prefix=f"et-bench-queue-{name}-") as tmp:
        wake = wake_latency(url_for("wake", tmp), samples)
        dispatch, start = dispatch_latency(url_for("dispatch", tmp), os.path.join(tmp, "d"),
                                           samples)  # fmt: skip
        _, cold_start = dispatch_latency(url_for("cold", tmp), os.path.join(tmp, "c"),
                                         max(3, samples // 4), warm=False)  # fmt: skip
        w50, w95 = pct(wake, 0.5) * 1000, pct(wake, 0.95) * 1000
        d50, d95 = pct(dispatch, 0.5) * 1000, pct(dispatch, 0.95) * 1000
        s50, c50 = pct(start, 0.5) * 1000, pct(cold_start, 0.5) * 1000
        print(f"[{name}] changes-wake floor   p50 {w50:7.1f} ms  p95 {w95:7.1f} ms")
        print(
            f"[{name}] dispatch (idle pool) p50 {d50:7.1f} ms  p95 {d95:7.1f} ms"
            f"  = {d50 / max(w50, 1e-6):.1f}x / {d95 / max(w95, 1e-6):.1f}x the floor"
        )
        print(f"[{name}] job start (claimed until the runner began) p50: warm {s50:7.1f} ms, "
              f"cold (spawned) {c50:7.1f} ms = {c50 / max(s50, 1e-6):.1f}x warm")  # fmt: skip
        base = None
        for workers, warm in ((1, False), (1, True), (2, True), (4, True)):
            data_dir = os.path.join(tmp, f"t{workers}{warm}")
            rate, cpu = throughput(
                url_for(f"tp{workers}{warm}", tmp), data_dir, workers, jobs, warm
            )
            base = base or rate
            print(
                f"[{name}] trivial jobs, {workers} worker(s), {'warm' if warm else 'cold'}: "
                f"{rate:6.2f} jobs/s  ({rate / base:.2f}x 1 cold worker; "
                f"{cpu * 1000:.1f} ms CPU per job in its process"
                + (", forking included)" if warm else ")")
            )
        sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="sqlite,couch")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=40)
    args = parser.parse_args()
    print(f"queue benchmark: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"{args.samples} latency samples, {args.jobs} jobs per throughput run")  # fmt: skip
    for backend in args.backends.split(","):
        if backend == "sqlite":
            run_backend("sqlite", lambda n, tmp: f"sqlite://{tmp}/{n}.db", args.samples, args.jobs)
        elif backend == "couch":
            from tests.support.pouchdb import PouchDBServer

            server = PouchDBServer()
            server.start()
            try:
                run_backend("couch", lambda n, tmp, s=server: s.db_url(n), args.samples, args.jobs)
            finally:
                server.close()
        else:
            parser.error(f"unknown backend {backend!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
