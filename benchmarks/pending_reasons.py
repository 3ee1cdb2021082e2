"""What `pending-reason` costs with many pending jobs: computed at answer time (this design)
against written into every pending document whenever it changes (the alternative).

For N pending jobs of U users (a few running), on the embedded store in a temporary folder:
- `order`: one fair ordering of the queue (what an answer computes once per index change,
  and what a worker's pick computes);
- `answer`: `GET`-time reason of one job (presence read + cached order), p50 over samples;
- `write-all`: writing the reason into every pending document once (what a keeper would do
  after each job start: every job behind it moves up one place), next to one document write.

    python -m benchmarks.pending_reasons [--jobs 1000,10000] [--users 50] [--samples 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from elasticthought.documents.status import PENDING_REASON
from elasticthought.queue.fairness import fair_order
from elasticthought.queue.pool import JobIndex
from elasticthought.queue.presence import heartbeat
from elasticthought.queue.reasons import QueueView
from elasticthought.queue.registry import register_runner, unregister_runner
from elasticthought.store import open_store

TYPE = "bench-reason-job"


def _docs(n: int, users: int) -> list[dict]:
    return [
        {
            "_id": f"{TYPE}:u{i % users}:{i:08d}",
            "type": TYPE,
            "user-id": f"u{i % users}",
            "processing-state": "pending",
            "created-at": float(i),
        }
        for i in range(n)
    ]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def run(jobs: int, users: int, samples: int, folder: Path) -> None:
    store = open_store(f"sqlite:{folder / f'bench{jobs}.db'}")
    docs = [store.create(d) for d in _docs(jobs, users)]
    index = JobIndex()
    for doc in docs:
        index.apply(doc["_id"], doc)
    heartbeat(store, "bench", {"engines": ["torch"], "gpus": []}, 4, [], time.time(), ttl=600)

    started = time.perf_counter()
    fair_order(index.pending.values(), index.running_by_owner(), index.last_started)
    order_s = time.perf_counter() - started

    from elasticthought.queue.presence import list_workers

    answers = []
    for n in range(samples):
        doc = docs[(n * 7919) % jobs]
        t = time.perf_counter()
        QueueView(index, list_workers(store, alive_only=True), 4).reason(doc)
        answers.append(time.perf_counter() - t)

    one = store.get(docs[0]["_id"])
    t = time.perf_counter()
    one[PENDING_REASON] = "x"
    store.update(one)
    one_write = time.perf_counter() - t
    t = time.perf_counter()
    for doc in docs:

        def change(d: dict) -> bool:
            d[PENDING_REASON] = f"waiting for a free worker ({d['_id']})"
            return True

        store.modify(doc["_id"], change)
    write_all = time.perf_counter() - t
    print(
        f"{jobs:>6} pending, {users} users | order {_ms(order_s)} | "
        f"answer p50 {_ms(statistics.median(answers))} (first {_ms(answers[0])}) | "
        f"write-all {write_all:.2f} s = {write_all / one_write:.0f} x one write "
        f"({_ms(one_write)}), and {jobs} feed events for every node"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1000,10000")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    register_runner(TYPE, "tests.queue.runner:run_test_job")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in (int(x) for x in args.jobs.split(",")):
                run(n, args.users, args.samples, Path(tmp))
    finally:
        unregister_runner(TYPE)


if __name__ == "__main__":
    main()
