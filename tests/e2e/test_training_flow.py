"""The seed's training flows over HTTP against a live `elasticthought serve` (one worker), on both
store backends: alphabet (IMAGE_DATA, V1 prototxts) to a trained model with status, metrics,
logs, model and snapshots; MNIST as DATA datasets (LevelDB and LMDB) with the seed's unmodified
prototxts reaching evaluation accuracy >= 0.9; fine-tuning from another job's model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import elasticthought
from elasticthought.engine.caffemodel import read_caffemodel, read_solverstate
from tests.api import helpers as h
from tests.e2e.training_support import (
    alphabet_solver,
    edit_solver,
    finished,
    mnist_solver,
    start_server,
    store_url,
    train,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "couch"])
def trainer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A live server with one worker on the embedded store or PouchDB Server."""
    server = start_server(
        tmp_path_factory.mktemp(f"train-{request.param}"), store_url(request, request.param)
    )
    server.backend = request.param  # type: ignore[attr-defined]
    yield server
    server.stop()


def _solver_edits(trainer, **short) -> dict:
    """The seed's exact solver on sqlite; a shorter run on couch."""
    return {} if trainer.backend == "sqlite" else short


def test_alphabet_flow(trainer, train_files):
    user = h.new_user(trainer.url, "alpha")
    edits = _solver_edits(trainer, max_iter=20, snapshot=10, test_iter=1)
    solver = alphabet_solver(user, train_files, **edits)
    job = train(user, solver["id"])
    max_iter = edits.get("max_iter", 50)
    assert job["max-iterations"] == max_iter and job["engine"] == "torch"

    # The log can be followed while the job runs; the stream ends with the job.
    follow = user.get(
        f"/training-jobs/{job['id']}/logs", params={"follow": "true"}, stream=True, timeout=240
    )
    assert follow.status_code == 200
    streamed = follow.content.decode()
    doc = finished(user, job["id"])

    assert doc["labels"] == [str(i) for i in range(10)] + [chr(c) for c in range(65, 91)]
    ev = doc["evaluation"]
    dataset = user.ok("GET", f"/datasets/{solver['dataset-id']}")
    assert ev["count"] == dataset["artifacts"]["testing"]["count"] == ev["records"]
    assert ev["forwards"] == math.ceil(ev["count"] / 500)
    assert 0 <= ev["correct"] <= ev["count"] and ev["accuracy"] == ev["correct"] / ev["count"]
    assert doc["transform"]["scale"] == pytest.approx(0.00390625)
    assert doc["transform"]["is_color"] is False

    status = user.ok("GET", f"/training-jobs/{job['id']}/status")
    assert status["state"] == "finished_successfully"
    assert status["engine"] == "torch" and status["engine-version"] == (
        f"torch-engine {elasticthought.__version__} (PyTorch {torch.__version__})"
    )
    assert status["last-iteration"] == status["max-iterations"] == max_iter
    assert status["logs"].endswith(f"/training-jobs/{job['id']}/logs")
    assert isinstance(status["loss"], float) and isinstance(status["lr"], float)
    assert status["evaluation"] == ev and status["eta-seconds"] == 0
    assert status["attempts"] == 1 and status["resumed-from-iteration"] is None
    assert status["started-at"] <= status["finished-at"]
    # The seed's test_interval (500) > max_iter: Caffe's own test ran at iteration 0 only.
    assert [t["iteration"] for t in status["test-outputs"]] == [0]

    metrics = user.ok("GET", f"/training-jobs/{job['id']}/metrics")
    iters = metrics["train"]["iteration"]
    assert iters == list(range(0, max_iter, 10))  # display: 10
    assert len(metrics["train"]["loss"]) == len(metrics["train"]["lr"]) == len(iters)
    assert metrics["train"]["loss"][-1] < metrics["train"]["loss"][0]
    assert metrics["test"]["iteration"] == [0] and "accuracy" in metrics["test"]["outputs"]

    logs = user.get(status["logs"], timeout=30)  # a relative link: no --public-url
    assert logs.status_code == 200 and logs.headers["Content-Type"].startswith("text/plain")
    text = logs.text
    assert f"Iteration {iters[-1]} (" in text and "Optimization Done." in text
    assert "Test net output #0: accuracy" in text and "Evaluation: accuracy" in text
    assert streamed and text.startswith(streamed[:200]) and "Optimization Done." in streamed

    model = user.get(f"/training-jobs/{job['id']}/model")
    assert model.status_code == 200
    net = read_caffemodel(model.content)
    assert [layer.name for layer in net.layer if layer.blobs] == ["conv1", "conv2", "ip1", "ip2"]

    snaps = user.ok("GET", f"/training-jobs/{job['id']}/snapshots")["items"]
    assert [s["iteration"] for s in snaps] == list(
        range(edits.get("snapshot", 50), max_iter + 1, edits.get("snapshot", 50))
    )
    last = snaps[-1]
    state = user.get(f"/training-jobs/{job['id']}/snapshots/{last['solverstate']['name']}")
    assert state.status_code == 200 and read_solverstate(state.content).iter == max_iter
    assert user.get(f"/training-jobs/{job['id']}/snapshots/nope.txt").status_code == 404
    # The last snapshot's weights are the final model's (both after max_iter updates).
    snap = user.get(last["caffemodel"]["url"].replace(trainer.url, ""))
    assert snap.content == model.content

    listed = user.ok("GET", "/training-jobs")["items"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert user.ok("POST", f"/training-jobs/{job['id']}/cancel", 409)


def test_mnist_flow(trainer, train_files):
    """DATA datasets: the seed's mnist prototxts (a LEVELDB net) train on a LevelDB and on an
    LMDB dataset (the backend is rewritten to the dataset's)."""
    dbs = ["LEVELDB", "LMDB"] if trainer.backend == "sqlite" else ["LMDB"]
    user = h.new_user(trainer.url, "mnist")
    edits = _solver_edits(trainer, max_iter=100, test_iter=1)
    jobs = {db: train(user, mnist_solver(user, train_files, db, **edits)["id"]) for db in dbs}
    for db, job in jobs.items():
        doc = finished(user, job["id"])
        ev = doc["evaluation"]
        assert ev["count"] == 1200 and ev["forwards"] == 12  # 30% of 4000 digits, batch 100
        assert ev["accuracy"] >= (0.9 if not edits else 0.85), ev
        assert doc["labels"] == list(range(10))
        assert doc["last-iteration"] == edits.get("max_iter", 200)
        log = user.get(f"/training-jobs/{job['id']}/logs").text
        assert f"Data layer mnist (TRAIN) reads {Path('/').anchor}" in log  # an absolute path
        assert f"(backend: {db})" in log  # the seed's LEVELDB net reads the dataset's database
        print(
            f"mnist {db} {trainer.backend}: accuracy {ev['accuracy']:.4f} "
            f"loss {ev['loss']:.4f} in {doc['training-seconds']:.1f} s"
        )


def test_fine_tuning_from_another_jobs_model(trainer, train_files):
    user = h.new_user(trainer.url, "tune")
    base_solver = mnist_solver(user, train_files, "LMDB", max_iter=40, test_iter=1, snapshot=0)
    base = finished(user, train(user, base_solver["id"])["id"])["id"]
    # A second solver on the same dataset: a few iterations of fine-tuning.
    solver = user.ok(
        "POST",
        "/solvers",
        201,
        json={
            "dataset-id": base_solver["dataset-id"],
            "specification": edit_solver(base_solver["specification"], max_iter=10),
            "specification-net": base_solver["specification-net"],
        },
    )
    tuned = finished(user, train(user, solver["id"], weights=base)["id"])["id"]
    model = user.get(f"/training-jobs/{base}/model").content
    made = user.ok(
        "POST",
        "/training-jobs",
        201,
        data={"solver-id": solver["id"]},
        files={"weights": ("base.caffemodel", model)},
    )
    assert made["weights"]["filename"] == "base.caffemodel"
    uploaded = finished(user, made["id"])["id"]

    def first_loss(job_id: str) -> float:
        return user.ok("GET", f"/training-jobs/{job_id}/metrics")["train"]["loss"][0]

    scratch = first_loss(base)
    assert scratch > 2.0  # ln(10) = 2.30: an untrained net
    # Starting from the trained weights, the first batch's loss is far lower.
    assert first_loss(tuned) < 1.0 < scratch
    assert first_loss(uploaded) == pytest.approx(first_loss(tuned), rel=1e-4)
    assert "Copying weights from" in user.get(f"/training-jobs/{tuned}/logs").text
    # Fine-tuning needs one's own finished-or-running job, or a reachable URL.
    r = user.post("/training-jobs", json={"solver-id": solver["id"], "weights": "training-job:x"})
    assert r.status_code == 422 and "weights" in r.json()["detail"]
    r = user.post("/training-jobs", json={"solver-id": solver["id"], "engine": "tensorflow"})
    assert r.status_code == 422 and "engine" in r.json()["detail"]
    r = user.post("/training-jobs", json={"solver-id": "solver:nobody:1"})
    assert r.status_code == 422 and "solver" in r.json()["detail"]


def test_bad_requests_and_limits(trainer, train_files):
    user = h.new_user(trainer.url, "bad")
    other = h.new_user(trainer.url, "oth")
    solver = alphabet_solver(user, train_files, max_iter=100000, test_iter=1)
    sid = solver["id"]
    for body, status, words in [
        ({"solver-id": sid, "color": 1}, 400, "color"),
        ({"engine": "torch"}, 400, "solver-id"),
        ({"solver-id": sid, "gpu": "many"}, 400, "gpu"),
        ({"solver-id": sid, "priority": "high"}, 400, "priority"),
        ({"solver-id": sid, "max-runtime": -1}, 400, "max-runtime"),
        ({"solver-id": sid, "cpus": 0}, 400, "cpus"),
        ({"solver-id": sid, "cpus": "all"}, 400, "cpus"),
        ({"solver-id": sid, "cpus": 5000}, 400, "cpus"),
        ({"solver-id": sid, "weights": "not a url"}, 422, "weights"),
        ({"solver-id": sid, "weights": f"training-job:user~{other.username}:1"}, 422, "weights"),
    ]:
        r = user.post("/training-jobs", json=body)
        assert r.status_code == status and words in r.json()["detail"], (body, r.text)
    r = other.post("/training-jobs", json={"solver-id": sid})  # another user's solver
    assert r.status_code == 422 and "solver-id" in r.json()["detail"]

    # max-runtime is enforced by the queue: the job fails with that reason.
    limited = train(user, sid, **{"max-runtime": 1, "priority": 5})
    doc = user.wait(f"/training-jobs/{limited['id']}", timeout=60)
    assert doc["processing-state"] == "failed" and "max-runtime" in doc["processing-log"]
    assert user.ok("GET", f"/training-jobs/{limited['id']}/status")["state"] == "failed"

    job = train(user, sid, priority="-1", cpus=2)
    assert job["priority"] == -1 and job["cpus"] == 2
    path = f"/training-jobs/{job['id']}"
    assert user.get(path + "/logs", params={"follow": "maybe"}).status_code == 400
    assert user.get(path + "/logs", params={"timeout": "9999"}).status_code == 400
    assert user.get(path + "/status", params={"x": "1"}).status_code == 400
    assert user.get(path + "/snapshots/..%2Fmodel.caffemodel").status_code == 404
    assert user.get(path + "/model").status_code == 404  # not trained (yet)
    assert user.ok("POST", path + "/cancel", 202)["cancel-requested"] is True
    assert user.wait(path, timeout=30)["processing-state"] == "canceled"
    assert user.ok("GET", path + "/status")["eta-seconds"] == 0
