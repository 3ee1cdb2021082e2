"""Attacks through jobs on a live `serve` (embedded store, two workers), each contained:
a runaway-memory training job fails naming the memory limit while another user's job still
finishes, and a diverging solver fails on its first attempt naming the NaN."""

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
    """batch_size 100000000: the job fails naming --job-memory-limit within 60 s; another
    user's ordinary job on the other worker still finishes."""
    attacker = h.new_user(server.url, "hog")
    victim = h.new_user(server.url, "fair")
    _, ds = h.alphabet_dataset(attacker, train_files)
    net = seed_text("alphabet/alpha_net.prototxt").replace(
        "batch_size: 500", "batch_size: 100000000", 1
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
