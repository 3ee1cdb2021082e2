"""Classify benchmark: `classify?wait=true` latency and throughput against the raw forward.

    python -m benchmarks.classify [--samples 40] [--batches 5] [--iters 20] [--threads 1]

One run: a live `elasticthought serve` (embedded store, one worker) trains the seed's alphabet
net briefly (as the e2e test does) and makes a classifier of it; then, after a warm-up,
- single-image `POST /classifiers/{id}/classify?wait=true` (one upload), p50/p95 latency;
- 64-image requests (uploads), images/s;
and, in this process, the raw engine forward of the same classifier (the engine's
`Classifier.probabilities` on already-preprocessed arrays) for 1 and 64 images, back to back
and, for one image, at the requests' pace (an idle gap before each forward, as the server's
inference process has between requests: a forward after a wait is slower), and the
engine's whole one-image classify (decode + transform + forward + result, what pycaffe's
`Classifier.predict` costs). Printed as ratios of the HTTP numbers to both, with where the
request's time goes: the server's phases from its `Server-Timing` header (app: routing,
authentication, the classifier's lookup; read: the multipart body; ipc: the round trip to
the inference process less its own time; model: that process's decode, transform, forward
and results; store: the answered job written; respond: the JSON answer) and the HTTP front
with the client (the client's time less the server's total); and, as the floor of any request,
the round trip of an authenticated `GET /classifiers/{id}` with the same client.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and not __package__:  # run as a file: see benchmarks/_syspath.py
    import _syspath  # noqa: F401

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def train_classifier(srv, tmp: Path):  # noqa: ANN001, ANN201
    """(user client, classifier document, alphabet images as [(name, bytes)])."""
    import shutil

    from tests.api import helpers as h
    from tests.e2e import classify_support as cs
    from tests.e2e import training_support as ts

    served = tmp / "served"
    served.mkdir()
    shutil.copyfile(h.ALPHABET, served / "alphabet.tar.gz")
    shutil.copyfile(cs.ALPHABET_DEPLOY, served / "alpha_classifier.prototxt")
    files = h.FileServer(served)
    user = h.new_user(srv.url, "bench")
    _, ds = h.alphabet_dataset(user, files)
    net = ts.seed_text("alphabet/alpha_net.prototxt").replace(
        "batch_size: 500", "batch_size: 64", 1
    )
    solver = ts.edit_solver(ts.seed_text("alphabet/alpha_solver.prototxt"), max_iter=20)
    solver = user.ok("POST", "/solvers", 201, json={"dataset-id": ds["id"],
                     "specification": solver, "specification-net": net})  # fmt: skip
    job = ts.finished(user, ts.train(user, solver["id"])["id"])
    clf = user.ok("POST", "/classifiers", 201, json={
        "specification-url": files.url + "/alpha_classifier.prototxt",
        "training-job-id": job["id"], **cs.SEED_FIELDS})  # fmt: skip
    files.close()
    images = []
    with tarfile.open(h.ALPHABET) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.lower().endswith(".png"):
                images.append((member.name.replace("/", "__"), tar.extractfile(member).read()))
    return user, clf, images


def post(user, clf_id: str, uploads: list, timings: list | None = None) -> dict:  # noqa: ANN001
    """One `classify?wait=true` request; its `Server-Timing` phases (ms) go to `timings`."""
    parts = [("files", (name, data, "image/png")) for name, data in uploads]
    response = user.post(f"/classifiers/{clf_id}/classify", files=parts,
                         params={"wait": "true"}, timeout=120)  # fmt: skip
    job = response.json()
    if response.status_code != 201 or job.get("processing-state") != "finished_successfully":
        raise RuntimeError(f"classify failed: {response.status_code} {response.text[:300]}")
    if timings is not None:
        timings.append(server_timing(response.headers.get("Server-Timing", "")))
    return job


def server_timing(header: str) -> dict[str, float]:
    """`name;dur=ms, ...` as {name: ms}."""
    out = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";dur=")
        if name and rest:
            out[name] = float(rest)
    return out


def breakdown(client_ms: list[float], timings: list[dict[str, float]]) -> str:
    """Median of each server phase, the HTTP front and client (the client's time less the
    server's total) and the inference round trip less the model's own time (IPC)."""
    med = {k: statistics.median(t.get(k, 0.0) for t in timings) for k in timings[0]}
    med["ipc"] = statistics.median(t["infer"] - t["model"] for t in timings)
    med["http+client"] = statistics.median(
        c - t["total"] for c, t in zip(client_ms, timings, strict=True)
    )
    order = ["http+client", "app", "read", "ipc", "model", "store", "respond"]
    return "  ".join(f"{k} {med[k]:.2f}" for k in order) + f"  (server total {med['total']:.2f})"


def raw_forward(srv, clf: dict, images: list, iters: int, threads: int, gap: float) -> dict:  # noqa: ANN001
    """Median seconds of the engine's forward for 1 and 64 preprocessed images, here, back to
    back; and (key "paced") of the one-image forward after an idle `gap` of seconds each, as a
    server process runs it between requests (caches and clock cool down while it waits)."""
    import numpy as np
    import torch

    from elasticthought.config import config_from_env
    from elasticthought.jobs.classify import Classifier
    from elasticthought.queue.context import JobContext
    from elasticthought.store import open_store

    torch.set_num_threads(threads)
    config = config_from_env(data_dir=str(srv.data_dir))
    work = Path(tempfile.mkdtemp(prefix="et-bench-raw-"))
    ctx = JobContext({"_id": "bench-raw"}, config, work, 1, config.store_url, config.blobs_url)
    doc = open_store(config.store_url).get(clf["id"])
    classifier = Classifier(ctx, doc)
    arrays = [classifier.prep(data) for _, data in images[:64]]
    out = {}
    for n in (1, 64):
        batch = np.stack(arrays[:n]).astype(np.float32)
        classifier.deploy.probabilities(batch)  # warm-up
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            classifier.deploy.probabilities(batch)
            times.append(time.perf_counter() - t0)
        out[n] = statistics.median(times)
    paced = []
    batch = np.stack(arrays[:1]).astype(np.float32)
    for _ in range(iters):
        time.sleep(gap)
        t0 = time.perf_counter()
        classifier.deploy.probabilities(batch)
        paced.append(time.perf_counter() - t0)
    out["paced"] = statistics.median(paced)
    one = []  # decode + transform + forward + results of one image (pycaffe's predict)
    for i in range(iters * 5):
        data = images[i % len(images)][1]
        t0 = time.perf_counter()
        classifier.classify([classifier.prep(data)])
        one.append(time.perf_counter() - t0)
    out[-1] = statistics.median(one)
    t0 = time.perf_counter()
    for _ in range(3):
        classifier.deploy.probabilities(np.stack([classifier.prep(d) for _, d in images[:64]]))
    out[-64] = (time.perf_counter() - t0) / 3  # decode + preprocess + forward of 64 images
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="server and raw forward threads")
    args = parser.parse_args()
    from tests.support.server import LiveServer

    print(f"classify benchmark: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"{args.threads} thread(s)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="et-bench-classify-") as tmp_name:
        tmp = Path(tmp_name)
        srv = LiveServer(tmp / "srv", workers=1,
                         args=["--allow-private-urls", "--cpus", str(args.threads)],
                         env={"OMP_NUM_THREADS": str(args.threads)}).start()  # fmt: skip
        try:
            t0 = time.perf_counter()
            user, clf, images = train_classifier(srv, tmp)
            print(f"trained the alphabet classifier in {time.perf_counter() - t0:.1f} s")
            t0 = time.perf_counter()
            post(user, clf["id"], images[:1])
            print(f"first classify (starts the inference process, loads the model): "
                  f"{(time.perf_counter() - t0) * 1000:.0f} ms")  # fmt: skip
            for i in range(5):  # warm-up
                post(user, clf["id"], images[i : i + 1])
            single, single_timing = [], []
            for i in range(args.samples):
                one = images[i % len(images) : i % len(images) + 1]
                t0 = time.perf_counter()
                post(user, clf["id"], one, single_timing)
                single.append(time.perf_counter() - t0)
            floor = []  # the HTTP round trip of a small authenticated request, same client
            for _ in range(args.samples):
                t0 = time.perf_counter()
                user.ok("GET", f"/classifiers/{clf['id']}")
                floor.append(time.perf_counter() - t0)
            batch = images[:64]
            post(user, clf["id"], batch)
            batch_ms, batch_timing = [], []
            t0 = time.perf_counter()
            for _ in range(args.batches):
                t1 = time.perf_counter()
                post(user, clf["id"], batch, batch_timing)
                batch_ms.append((time.perf_counter() - t1) * 1000)
            rate = args.batches * len(batch) / (time.perf_counter() - t0)
            gap = statistics.median(single)  # the pace of the single-image requests
            raw = raw_forward(srv, clf, images, args.iters, args.threads, gap)
        finally:
            srv.stop()
    p50, p95 = pct(single, 0.5) * 1000, pct(single, 0.95) * 1000
    raw1, full1 = raw[1] * 1000, raw[-1] * 1000
    raw_rate = 64 / raw[64]
    print(f"single image classify?wait=true: p50 {p50:.1f} ms  p95 {p95:.1f} ms  (target "
          f"p50 <= 50 ms: {'met' if p50 <= 50 else 'NOT met'})")  # fmt: skip
    print(f"  vs the raw forward of 1 preprocessed image ({raw1:.2f} ms): p50 = "
          f"{p50 / raw1:.1f}x (the issue's target: <= 3x: "
          f"{'met' if p50 <= 3 * raw1 else 'NOT met'})")  # fmt: skip
    paced = raw["paced"] * 1000
    print(f"  vs the raw forward of 1 image at the requests' pace (idle {p50:.1f} ms before "
          f"each, as the server's process waits between requests; {paced:.2f} ms): p50 = "
          f"{p50 / paced:.1f}x")  # fmt: skip
    print(f"  vs the engine's whole one-image classify (decode + transform + forward + "
          f"result, pycaffe's predict; {full1:.2f} ms): p50 = {p50 / full1:.1f}x")  # fmt: skip
    ms = [t * 1000 for t in single]
    print(f"  where the time goes (medians, ms): {breakdown(ms, single_timing)}")
    floor50 = pct(floor, 0.5) * 1000
    print(f"  floor: GET /classifiers/{{id}} (authenticated, one document read) p50 "
          f"{floor50:.1f} ms = {floor50 / raw1:.1f}x the raw forward; classify p50 less this "
          f"floor: {p50 - floor50:.1f} ms")  # fmt: skip
    prep_rate = 64 / raw[-64]
    print(f"64-image requests: {rate:.0f} images/s; raw forward {raw_rate:.0f} images/s "
          f"({raw_rate / rate:.2f}x HTTP); raw decode+preprocess+forward {prep_rate:.0f} "
          f"images/s ({prep_rate / rate:.2f}x HTTP)")  # fmt: skip
    print(f"  where the time goes (medians, ms per request): {breakdown(batch_ms, batch_timing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
