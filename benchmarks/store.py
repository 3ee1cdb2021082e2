"""Store latency next to its floor, both backends side by side.

    python -m benchmarks.store [--n 300] [--wakes 30] [--couch-url http://HOST:PORT]

For each backend: single-document read and update latency (p50, p95) and changes-wake latency
(a write, until a thread blocked in `changes(since, timeout)` returns with it). Each is printed
next to a floor measured in the same run, interleaved with it, on the same kind of target:
- sqlite: a bare `sqlite3` SELECT / UPDATE on a WAL file of its own; the wake floor is a bare write
  followed by a `threading.Event` wake-up.
- couch: a bare `requests` GET / PUT to the same PouchDB Server (started in memory unless
  `--couch-url` names a server); the wake floor is a bare PUT ending a bare longpoll GET.
The sqlite store is also measured waking on a write made by another process (it polls the
file); that floor is a bare write in the other process announced through a pipe.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: see benchmarks/_syspath.py
    import _syspath  # noqa: F401

import requests  # noqa: E402

from elasticthought.store import Store, open_store  # noqa: E402

Timer = Callable[[], None]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def timed(fn: Timer) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(n: int, measured: Timer, floor: Timer) -> tuple[list[float], list[float]]:
    """Time `measured` and `floor` alternately n times each (after a short warm-up)."""
    for _ in range(min(20, n)):
        measured()
        floor()
    ours, base = [], []
    for _ in range(n):
        ours.append(timed(measured))
        base.append(timed(floor))
    return ours, base


class Row:
    def __init__(self, backend: str, what: str, ours: list[float], base: list[float]) -> None:
        self.backend, self.what, self.ours, self.base = backend, what, ours, base

    def line(self) -> str:
        o50, o95 = percentile(self.ours, 0.5) * 1e3, percentile(self.ours, 0.95) * 1e3
        b50, b95 = percentile(self.base, 0.5) * 1e3, percentile(self.base, 0.95) * 1e3
        return (
            f"{self.backend:<7} {self.what:<28} {o50:8.3f} {o95:8.3f}   {b50:8.3f} {b95:8.3f}"
            f"   {o50 / b50:7.2f}x {o95 / b95:7.2f}x"
        )


HEADER = (
    f"{'backend':<7} {'operation':<28} {'p50 ms':>8} {'p95 ms':>8}   {'floor50':>8} "
    f"{'floor95':>8}   {'p50 ratio':>8} {'p95 ratio':>8}"
)


def wake_latency(store: Store, write: Timer, n: int) -> list[float]:
    """Seconds from the start of `write()` until a blocked `changes` call returns with it."""
    results = []
    for _ in range(n):
        seq = store.changes().last_seq
        ready = threading.Event()
        done: dict[str, float] = {}

        def wait(since: str = seq, box: dict[str, float] = done, flag=ready) -> None:  # noqa: ANN001
            flag.set()
            page = store.changes(since, timeout=10)
            box["at"] = time.perf_counter()
            box["n"] = len(page.ids)

        waiter = threading.Thread(target=wait)
        waiter.start()
        ready.wait()
        time.sleep(0.02)  # let the waiter block
        started = time.perf_counter()
        write()
        waiter.join(15)
        if not done.get("n"):
            raise RuntimeError("changes did not return the write")
        results.append(done["at"] - started)
    return results


# sqlite -------------------------------------------------------------------------------------------


def bench_sqlite(tmp: Path, n: int, wakes: int) -> list[Row]:
    store = open_store(f"sqlite://{tmp / 'bench.db'}")
    doc = store.create({"_id": "bench:doc", "type": "bench", "payload": "x" * 200, "n": 0})

    bare = sqlite3.connect(tmp / "floor.db", isolation_level=None, check_same_thread=False)
    bare.execute("PRAGMA journal_mode=WAL")
    bare.execute("PRAGMA synchronous=NORMAL")
    bare.execute("CREATE TABLE t (id TEXT PRIMARY KEY, body TEXT)")
    body = json.dumps({"type": "bench", "payload": "x" * 200, "n": 0})
    bare.execute("INSERT INTO t VALUES ('bench:doc', ?)", (body,))

    state = {"doc": doc}

    def read() -> None:
        store.get("bench:doc")

    def floor_read() -> None:
        bare.execute("SELECT body FROM t WHERE id = ?", ("bench:doc",)).fetchone()

    def update() -> None:
        current = state["doc"]
        current["n"] += 1
        state["doc"] = store.update(current)

    def floor_update() -> None:
        bare.execute("UPDATE t SET body = ? WHERE id = ?", (body, "bench:doc"))

    rows = [
        Row("sqlite", "read (get)", *interleaved(n, read, floor_read)),
        Row("sqlite", "update", *interleaved(n, update, floor_update)),
    ]

    ours = wake_latency(store, update, wakes)
    base = []
    for _ in range(wakes):
        event = threading.Event()
        woke: dict[str, float] = {}

        def wait(ev: threading.Event = event, box: dict[str, float] = woke) -> None:
            ev.wait(10)
            box["at"] = time.perf_counter()

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.02)
        started = time.perf_counter()
        floor_update()
        event.set()
        waiter.join(15)
        base.append(woke["at"] - started)
    rows.append(Row("sqlite", "changes wake (same process)", ours, base))

    # Another process writes (after a random pause, so the poll phase is random); this one
    # notices by polling the file. Floor: the same process does a bare write, then tells us
    # through a pipe, the fastest way a second process can say "I wrote".
    child = (
        "import random, sqlite3, sys, time\n"
        "from elasticthought.store import open_store\n"
        f"store = open_store({store.url!r})\n"
        f"bare = sqlite3.connect({str(tmp / 'floor.db')!r}, isolation_level=None)\n"
        "for line in sys.stdin:\n"
        "    time.sleep(random.uniform(0, 0.1))\n"
        "    t = time.time()\n"
        "    if line.strip() == 'store':\n"
        "        store.create({'type': 'bench'})\n"
        "    else:\n"
        "        bare.execute('UPDATE t SET n = n + 1')\n"
        "    print(t, flush=True)\n"
    )
    bare.execute("ALTER TABLE t ADD COLUMN n INTEGER DEFAULT 0")
    proc = subprocess.Popen(
        [sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    cross, cross_floor = [], []
    try:
        for _ in range(wakes):
            seq = store.changes().last_seq
            proc.stdin.write("store\n")
            proc.stdin.flush()
            store.changes(seq, timeout=10)
            returned = time.time()
            cross.append(returned - float(proc.stdout.readline()))
            proc.stdin.write("bare\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            cross_floor.append(time.time() - float(line))
    finally:
        proc.stdin.close()
        proc.wait(10)
    rows.append(Row("sqlite", "changes wake (other process)", cross, cross_floor))
    store.close()
    bare.close()
    return rows


# couch --------------------------------------------------------------------------------------------


def bench_couch(server_url: str, n: int, wakes: int) -> list[Row]:
    db = f"bench{uuid.uuid4().hex[:8]}"
    store = open_store(f"{server_url}/{db}")
    doc = store.create({"_id": "bench:doc", "type": "bench", "payload": "x" * 200, "n": 0})

    session = requests.Session()
    session.headers.update({"Accept": "application/json", "Content-Type": "application/json"})
    floor_url = f"{server_url}/{db}/bench%3Afloor"
    floor_doc = {"type": "bench", "payload": "x" * 200, "n": 0}
    floor_doc["_rev"] = session.put(floor_url, data=json.dumps(floor_doc)).json()["rev"]

    state = {"doc": doc}

    def read() -> None:
        store.get("bench:doc")

    def floor_read() -> None:
        response = session.get(floor_url)
        response.raise_for_status()
        response.json()

    def update() -> None:
        current = state["doc"]
        current["n"] += 1
        state["doc"] = store.update(current)

    def floor_update() -> None:
        floor_doc["n"] += 1
        response = session.put(floor_url, data=json.dumps(floor_doc))
        response.raise_for_status()
        floor_doc["_rev"] = response.json()["rev"]

    rows = [
        Row("couch", "read (get)", *interleaved(n, read, floor_read)),
        Row("couch", "update", *interleaved(n, update, floor_update)),
    ]

    ours = wake_latency(store, update, wakes)
    base = []
    poller = requests.Session()
    for _ in range(wakes):
        since = session.get(f"{server_url}/{db}").json()["update_seq"]
        woke: dict[str, float] = {}

        def wait(box: dict[str, float] = woke, since_: object = since) -> None:
            response = poller.get(
                f"{server_url}/{db}/_changes",
                params={"feed": "longpoll", "since": since_},
                timeout=10,
            )
            box["at"] = time.perf_counter()
            box["n"] = len(response.json()["results"])

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.02)
        started = time.perf_counter()
        floor_update()
        waiter.join(15)
        base.append(woke["at"] - started)
    rows.append(Row("couch", "changes wake", ours, base))
    store.close()
    session.delete(f"{server_url}/{db}")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="reads and updates timed per case")
    parser.add_argument("--wakes", type=int, default=30, help="changes wake-ups timed per case")
    parser.add_argument("--couch-url", default="", help="a CouchDB-protocol server root URL")
    args = parser.parse_args()

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="et-bench-store-") as tmp:
        rows += bench_sqlite(Path(tmp), args.n, args.wakes)

    server = None
    url = args.couch_url.rstrip("/")
    if not url:
        from tests.support.pouchdb import PouchDBServer

        server = PouchDBServer().start()
        url = server.url
    try:
        rows += bench_couch(url, args.n, args.wakes)
    finally:
        if server is not None:
            server.close()

    print(f"store latency vs floor (n={args.n}, wakes={args.wakes}, cpus={os.cpu_count()})")
    print(HEADER)
    for row in rows:
        print(row.line())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
