"""Attacks through jobs on a live `serve` (embedded store, two workers), each contained:
nets whose blobs can never fit the job memory limit fail at once, before any net is built, on
either engine, naming the numbers; a runaway-memory training job that the estimate cannot see
fails naming the memory limit while another user's job still finishes; and a diverging solver
fails on its first attempt naming the NaN."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.api import helpers as h
from tests.e2e.training_support import (
    _seed_solver,
    edit_solver,
    finished,
    seed_text,
    start_server,
    train,
)
from tests.support.server import LiveServer

pytestmark = pytest.mark.slow

JOB_MEMORY_MIB = 2048
RUNAWAY_BATCH = 7000  # blobs ~1.5 GiB: under the limit by the estimate, over it when running
HUGE_BATCH = 100000000  # blobs of hundreds of GiB: refused before any net is built


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(
        tmp_path_factory.mktemp("hardening-jobs"),
        None,
        workers=2,
        args=("--job-memory-limit", str(JOB_MEMORY_MIB)),
    )
    yield srv
    srv.stop()


def failed_job(user: h.Client, job_id: str, timeout: float) -> dict:
    doc = user.wait(f"/training-jobs/{job_id}", timeout=timeout)
    assert doc["processing-state"] == "failed", doc
    return doc


def test_runaway_memory_job_fails_naming_the_limit_while_others_finish(
    server: LiveServer, train_files: h.FileServer
) -> None:
    """batch_size 7000 on the alphabet net: its blobs (about 1.5 GiB) pass the estimate under
    the 2 GiB limit, but the engine's own memory, autograd and prefetched batches come on top
    while it runs: the job fails at run time naming --job-memory-limit within 60 s; another
    user's ordinary job on the other worker still finishes."""
    attacker = h.new_user(server.url, "hog")
    victim = h.new_user(server.url, "fair")
    _, ds = h.alphabet_dataset(attacker, train_files)
    net = seed_text("alphabet/alpha_net.prototxt").replace(
        "batch_size: 500", f"batch_size: {RUNAWAY_BATCH}"
    )
    solver = attacker.ok(
        "POST",
        "/solvers",
        201,
        json={
            "dataset-id": ds["id"],
            "specification-net": net,
            "specification": edit_solver(
                seed_text("alphabet/alpha_solver.prototxt"), max_iter=20, snapshot=0
            ),
        },
    )
    normal = _seed_solver(
        victim,
        train_files,
        h.alphabet_dataset(victim, train_files)[1]["id"],
        "alphabet/alpha",
        {"max_iter": 20, "snapshot": 0, "test_iter": 1},
    )
    victim_job = train(victim, normal["id"])
    hog = train(attacker, solver["id"])
    victim.wait(f"/datasets/{normal['dataset-id']}", timeout=120)
    attacker.wait(f"/datasets/{ds['id']}", timeout=120)
    started = time.monotonic()
    doc = failed_job(attacker, hog["id"], timeout=120)
    assert "--job-memory-limit" in doc["processing-log"], doc["processing-log"]
    assert f"{JOB_MEMORY_MIB} MiB" in doc["processing-log"]
    assert "the nets need" not in doc["processing-log"]  # the run hit it, not the estimate
    assert "out of memory" in doc["processing-log"]
    assert time.monotonic() - started < 60
    assert doc.get("attempts", 1) == 1
    finished(victim, victim_job["id"])


def test_diverging_solver_fails_on_attempt_one_naming_nan(
    server: LiveServer, train_files: h.FileServer
) -> None:
    """base_lr 10000: the loss turns NaN; the job fails at once (no retries) with the
    iteration, and no non-finite number reaches the document."""
    user = h.new_user(server.url, "nan")
    _, ds = h.alphabet_dataset(user, train_files)
    solver = _seed_solver(
        user,
        train_files,
        ds["id"],
        "alphabet/alpha",
        {"base_lr": 10000, "max_iter": 200, "display": 1, "snapshot": 0, "test_interval": 1000},
    )
    job = train(user, solver["id"])
    doc = failed_job(user, job["id"], timeout=240)
    log = doc["processing-log"]
    assert "loss diverged (NaN at iteration" in log or "loss diverged (Infinity" in log, log
    assert doc.get("attempts", 1) == 1
    status = user.ok("GET", f"/training-jobs/{job['id']}/status")
    assert status["state"] == "failed"
    assert not isinstance(status.get("loss"), float) or status["loss"] == status["loss"]


@pytest.mark.parametrize("engine", ["torch", pytest.param("caffe", marks=pytest.mark.caffe)])
def test_nets_that_can_never_fit_fail_at_once_naming_the_numbers(
    server: LiveServer, train_files: h.FileServer, engine: str, request: pytest.FixtureRequest
) -> None:
    """batch_size 100000000 in the seed's MNIST net: before a net is built, the job fails on
    attempt 1 within seconds, naming what the blobs need, the batch size, the limit and its
    flag (real Caffe would abort on its allocation; torch would grow until the limit)."""
    if engine == "caffe":
        request.getfixturevalue("caffe_runtime")
    user = h.new_user(server.url, "huge")
    df = user.ok(
        "POST", "/datafiles", 201,
        json={"url": f"{train_files.url}/mnist_small_lmdb.tar.gz", "layers_type": "DATA",
              "layers_data_param": {"backend": "LMDB"}},
    )  # fmt: skip
    ds = h.split_dataset(user, df["id"])
    net = seed_text("mnist/mnist_net.prototxt")
    net = net.replace("batch_size: 64", f"batch_size: {HUGE_BATCH}")
    solver = user.ok(
        "POST",
        "/solvers",
        201,
        json={
            "dataset-id": ds["id"],
            "specification-net": net,
            "specification": edit_solver(
                seed_text("mnist/mnist_solver.prototxt"), max_iter=20, snapshot=0
            ),
        },
    )
    job = train(user, solver["id"], engine=engine)
    user.wait(f"/datasets/{ds['id']}", timeout=120)
    h.wait_for(
        lambda: user.ok("GET", f"/training-jobs/{job['id']}")["processing-state"] != "pending",
        "the job to start",
        120,
    )
    started = time.monotonic()
    doc = failed_job(user, job["id"], timeout=120)
    took = time.monotonic() - started
    log = doc["processing-log"]
    assert log.startswith("the nets need at least "), log
    assert f"GiB at batch size {HUGE_BATCH} (TRAIN)" in log, log
    assert "at batch size 100 (TEST)" in log, log
    assert log.endswith(
        f"more than the job memory limit of {JOB_MEMORY_MIB} MiB (--job-memory-limit)"
    )
    assert doc.get("attempts") == 1
    assert took < 30, f"refused after {took:.1f} s"
