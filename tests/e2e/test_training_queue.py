"""Training jobs in the queue, over HTTP against live servers with one worker, on both store
backends: two users' jobs alternate; cancel and delete of running and pending jobs; kill -9 of
the serving process during training, then a restart: the job resumes from its last snapshot."""

from __future__ import annotations

import pytest

from tests.api import helpers as h
from tests.e2e.training_support import (
    finished,
    mnist_solver,
    start_server,
    store_url,
    train,
    wait_for,
)

pytestmark = pytest.mark.slow

#: A short MNIST run: the seed's net and solver with fewer iterations and one test batch.
SHORT = {"max_iter": 10, "test_iter": 1, "snapshot": 0}


@pytest.fixture(params=["sqlite", "couch"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def _status(user: h.Client, job_id: str) -> dict:
    return user.ok("GET", f"/training-jobs/{job_id}/status")


def test_two_users_jobs_alternate(request, backend, tmp_path, train_files):
    server = start_server(tmp_path, store_url(request, backend), workers=1)
    try:
        a, b = h.new_user(server.url, "fa"), h.new_user(server.url, "fb")
        solvers = {}
        for user in (a, b):
            solver = mnist_solver(user, train_files, "LMDB", small=True, **SHORT)
            user.wait(f"/datasets/{solver['dataset-id']}")
            solvers[user.username] = solver["id"]
        jobs = [(user, train(user, solvers[user.username])["id"]) for user in (a, a, b, b)]
        docs = [finished(user, job_id) for user, job_id in jobs]
        by_start = sorted(docs, key=lambda d: d["started-at"])
        owners = [d["user-id"] for d in by_start]
        assert owners == [f"user:{u.username}" for u in (a, b, a, b)], owners
        for doc in docs:
            assert doc["last-iteration"] == 10 and doc["evaluation"]["count"] == 300
        # One worker: the runs did not overlap.
        for first, second in zip(by_start, by_start[1:], strict=False):
            assert first["finished-at"] <= second["started-at"]
    finally:
        server.stop()


def test_cancel_and_delete(request, backend, tmp_path, train_files):
    server = start_server(tmp_path, store_url(request, backend), workers=1)
    try:
        user = h.new_user(server.url, "cx")
        solver = mnist_solver(
            user, train_files, "LMDB", small=True, max_iter=100000, test_iter=1, snapshot=0
        )
        running = train(user, solver["id"])["id"]
        wait_for(
            lambda: (_status(user, running).get("last-iteration") or 0) >= 10,
            "the job to train some iterations",
        )
        waiting = train(user, solver["id"])["id"]
        assert _status(user, waiting)["state"] == "pending"
        assert user.delete(f"/training-jobs/{waiting}").status_code == 204
        assert user.get(f"/training-jobs/{waiting}").status_code == 404

        canceled = user.ok("POST", f"/training-jobs/{running}/cancel", 202)
        assert canceled["cancel-requested"] is True
        doc = user.wait(f"/training-jobs/{running}", timeout=30)
        assert doc["processing-state"] == "canceled"
        status = _status(user, running)
        assert status["state"] == "canceled" and status["last-iteration"] < 100000
        assert user.get(f"/training-jobs/{running}/model").status_code == 404
        assert "Iteration 10 (" in user.get(f"/training-jobs/{running}/logs").text

        # DELETE of a running job cancels it first.
        again = train(user, solver["id"])["id"]
        wait_for(lambda: _status(user, again)["state"] == "processing", "the job to start")
        assert user.delete(f"/training-jobs/{again}").status_code == 204
        assert user.get(f"/training-jobs/{again}/status").status_code == 404
        assert [j["id"] for j in user.ok("GET", "/training-jobs")["items"]] == [running]
    finally:
        server.stop()


def test_kill_during_training_resumes_from_snapshot(request, backend, tmp_path, train_files):
    lease = ["--lease-seconds", "4"]
    server = start_server(tmp_path, store_url(request, backend), workers=1, args=lease)
    try:
        user = h.new_user(server.url, "kl")
        max_iter = 200  # a wide window between the first snapshot (30) and the end
        solver = mnist_solver(
            user, train_files, "LMDB", small=True, max_iter=max_iter, snapshot=30, test_iter=1
        )
        job = train(user, solver["id"])["id"]

        def snapshotted():
            items = user.ok("GET", f"/training-jobs/{job}/snapshots")["items"]
            return items if items and "solverstate" in items[-1] else None

        snaps = wait_for(snapshotted, "a first snapshot", timeout=180)
        assert _status(user, job)["state"] == "processing"
        server.kill()
        server.start()
        doc = finished(user, job)
        resumed = doc["resumed-from-iteration"]
        assert resumed >= snaps[-1]["iteration"] and resumed % 30 == 0
        assert doc["attempts"] >= 2 and doc["last-iteration"] == max_iter
        assert max_iter <= doc["iterations-trained"] < 2 * max_iter
        status = _status(user, job)
        assert status["resumed-from-iteration"] == resumed and status["attempts"] >= 2
        log = user.get(f"/training-jobs/{job}/logs").text
        assert f"resumes from the snapshot of iteration {resumed}" in log
        assert "Optimization Done." in log
        iters = user.ok("GET", f"/training-jobs/{job}/metrics")["train"]["iteration"]
        assert iters == sorted(set(iters)) and iters[-1] == max_iter - 10
        assert [s["iteration"] for s in doc["snapshots"]][-1] == max_iter
        assert doc["evaluation"]["count"] == 300 and doc["evaluation"]["accuracy"] > 0.5
    finally:
        server.stop()
