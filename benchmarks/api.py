"""API benchmark: requests per second of `elasticthought serve` on the embedded store, and job
dispatch latency under load.

    python -m benchmarks.api [--clients 16] [--seconds 5] [--samples 5]

In one run, against live `serve` processes (tests/support/server.py):
- server A (`--workers 0`, so queued jobs stay queued): requests/s with `--clients` concurrent
  keep-alive clients for `GET /health` (the floor: no auth, no documents), `GET
  /training-jobs/{id}/status` (token auth + one document read) and `POST /training-jobs`
  (token auth, a solver read, one document written), each printed with its ratio to /health;
  the status route also once with HTTP Basic (a scrypt check per request);
- server B (`--workers 1`): dispatch latency of a training job (its `created-at` until its
  `started-at`, i.e. claimed and `processing`, both stamped by the server; and until a client
  polling the job sees `processing`), idle and while `--clients` clients load GET status;
  each job is canceled once it ran, so the worker is free for the next sample.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__" and not __package__:  # run as a file: see benchmarks/_syspath.py
    import _syspath  # noqa: F401

import requests  # noqa: E402

from elasticthought.documents.fields import PROCESSING_STATE  # noqa: E402
from elasticthought.documents.states import PENDING  # noqa: E402
from tests.api import helpers as h  # noqa: E402
from tests.support.server import LiveServer  # noqa: E402

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def load(
    method: str,
    url: str,
    clients: int,
    seconds: float,
    headers: dict,
    body: Any = None,
    expect: int = 200,
    stop: threading.Event | None = None,
) -> tuple[float, int]:
    """(requests/s, errors) of `clients` threads each looping one request for `seconds` (or
    until `stop` is set)."""
    counts = [0] * clients
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline: list[float] = [0.0]

    def client(i: int) -> None:
        session = requests.Session()
        start.wait()
        while time.perf_counter() < deadline[0] and not (stop and stop.is_set()):
            try:
                r = session.request(method, url, headers=headers, json=body, timeout=30)
                if r.status_code == expect:
                    counts[i] += 1
                else:
                    errors[i] += 1
            except requests.RequestException:
                errors[i] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    return sum(counts) / elapsed, sum(errors)


def setup_user(server: LiveServer, files: h.FileServer) -> tuple[h.Client, dict, str]:
    """A user with a token and a solver (alphabet datafile -> dataset -> seed prototxts)."""
    user = h.new_user(server.url, "bench")
    token = user.ok("POST", "/tokens", 201, json={"name": "bench"})["token"]
    df = user.ok("POST", "/datafiles", 201, json={"url": files.url + "/alphabet.tar.gz"})
    ds = h.split_dataset(user, df["id"])
    solver = user.ok(
        "POST",
        "/solvers",
        201,
        json={
            "dataset-id": ds["id"],
            "specification-url": files.url + "/alphabet/alpha_solver.prototxt",
            "specification-net-url": files.url + "/alphabet/alpha_net.prototxt",
        },
    )
    return user, solver, token


def throughput(server: LiveServer, files: h.FileServer, clients: int, seconds: float) -> None:
    user, solver, token = setup_user(server, files)
    auth = {"Authorization": f"Token {token}"}
    job = user.ok("POST", "/training-jobs", 201, json={"solver-id": solver["id"]})
    status_url = f"{server.url}/training-jobs/{job['id']}/status"
    rows = [
        ("GET /health (floor)", load("GET", server.url + "/health", clients, seconds, {})),
        ("GET status (token)", load("GET", status_url, clients, seconds, auth)),
        (
            "GET status (Basic)",
            load(
                "GET",
                status_url,
                clients,
                seconds,
                {"Authorization": requests.auth._basic_auth_str(user.username, user.password)},
            ),
        ),
        (
            "POST /training-jobs",
            load(
                "POST",
                server.url + "/training-jobs",
                clients,
                seconds,
                auth,
                body={"solver-id": solver["id"]},
                expect=201,
            ),
        ),
    ]
    floor = rows[0][1][0]
    print(
        f"\nthroughput, {clients} concurrent clients, {seconds:g} s each (server A, "
        "embedded store, --workers 0)"
    )
    print(f"  {'route':<24} {'req/s':>9} {'errors':>7} {'ratio to /health':>17}")
    for name, (rps, errors) in rows:
        print(f"  {name:<24} {rps:9.1f} {errors:7d} {rps / floor:17.3f}")


def dispatch_sample(user: h.Client, solver_id: str) -> tuple[float, float]:
    """(server-stamped created->started seconds, client-observed submit->processing seconds)
    of one training job; the job is then canceled and waited for."""
    t0 = time.perf_counter()
    job = user.ok("POST", "/training-jobs", 201, json={"solver-id": solver_id})
    deadline = time.monotonic() + 120
    while True:
        doc = user.ok("GET", f"/training-jobs/{job['id']}")
        if doc[PROCESSING_STATE] != PENDING:
            seen = time.perf_counter() - t0
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the job was not dispatched within 120 s")
        time.sleep(0.01)
    stamped = float(doc["started-at"]) - float(doc["created-at"])
    user.ok("POST", f"/training-jobs/{job['id']}/cancel", 202)
    user.wait(f"/training-jobs/{job['id']}", timeout=120)
    return stamped, seen


def dispatch(server: LiveServer, files: h.FileServer, clients: int, samples: int) -> None:
    user, solver, token = setup_user(server, files)
    user.wait(f"/datasets/{solver['dataset-id']}", timeout=120)
    dispatch_sample(user, solver["id"])  # warm-up: first child process, imports
    idle = [dispatch_sample(user, solver["id"]) for _ in range(samples)]
    stop = threading.Event()
    probe = user.ok("POST", "/training-jobs", 201, json={"solver-id": solver["id"]})
    user.ok("POST", f"/training-jobs/{probe['id']}/cancel", 202)
    user.wait(f"/training-jobs/{probe['id']}", timeout=120)
    status_url = f"{server.url}/training-jobs/{probe['id']}/status"
    result: dict[str, Any] = {}
    loader = threading.Thread(
        target=lambda: result.update(
            rps=load(
                "GET", status_url, clients, 3600, {"Authorization": f"Token {token}"}, stop=stop
            )
        ),
        daemon=True,
    )
    loader.start()
    time.sleep(1.0)
    try:
        loaded = [dispatch_sample(user, solver["id"]) for _ in range(samples)]
    finally:
        stop.set()
        loader.join()
    print(
        f"\ndispatch latency of a training job (server B, --workers 1), {samples} samples; "
        f"under load: {clients} clients on GET status ({result['rps'][0]:.1f} req/s)"
    )
    print(f"  {'':<42} {'p50 s':>8} {'max s':>8} {'ratio to idle p50':>18}")
    for name, index in (("created-at -> started-at", 0), ("submit -> client sees processing", 1)):
        base = statistics.median(s[index] for s in idle)
        for label, values in (("idle", idle), ("loaded", loaded)):
            v = [s[index] for s in values]
            print(
                f"  {name + ' (' + label + ')':<42} {pct(v, 0.5):8.3f} {max(v):8.3f} "
                f"{pct(v, 0.5) / base:18.2f}"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="et-bench-api-"))
    served = tmp / "served"
    served.mkdir()
    shutil.copyfile(h.ALPHABET, served / "alphabet.tar.gz")
    shutil.copytree(h.SEED / "alphabet", served / "alphabet")
    files = h.FileServer(served)
    print(f"elasticthought API benchmark: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    try:
        common = {"args": ["--allow-private-urls"], "env": ENV}
        with LiveServer(tmp / "a", workers=0, **common) as server:
            throughput(server, files, args.clients, args.seconds)
        with LiveServer(tmp / "b", workers=1, **common) as server:
            dispatch(server, files, args.clients, args.samples)
    finally:
        files.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
