"""A training job on the `caffe` engine (real BVLC Caffe in its own interpreter), over HTTP: the
seed's MNIST net trains, the log is Caffe's own, snapshots and the model land in the blob store,
and the service evaluates the model like a torch-trained one. Needs real Caffe (fails in CI
without it, skips elsewhere)."""

from __future__ import annotations

import pytest

from elasticthought.engine.caffemodel import read_caffemodel
from tests.api import helpers as h
from tests.e2e.training_support import finished, mnist_solver, start_server, train

pytestmark = [pytest.mark.slow, pytest.mark.caffe]


def test_caffe_engine_training_job(caffe_runtime, tmp_path, train_files):
    server = start_server(tmp_path, None, workers=1)
    try:
        user = h.new_user(server.url, "cf")
        solver = mnist_solver(
            user, train_files, "LMDB", small=True, max_iter=30, snapshot=20, test_iter=1
        )
        job = train(user, solver["id"], engine="caffe")
        assert job["engine"] == "caffe"
        doc = finished(user, job["id"])
        assert doc["engine"] == "caffe" and doc["last-iteration"] == 30
        log = user.get(f"/training-jobs/{job['id']}/logs").text
        assert "solver.cpp" in log and "Optimization Done." in log  # real Caffe's glog lines
        snaps = user.ok("GET", f"/training-jobs/{job['id']}/snapshots")["items"]
        assert [s["iteration"] for s in snaps] == [20, 30]
        model = read_caffemodel(user.get(f"/training-jobs/{job['id']}/model").content)
        assert [layer.name for layer in model.layer if layer.blobs] == [
            "conv1",
            "conv2",
            "ip1",
            "ip2",
        ]
        ev = doc["evaluation"]
        assert ev["count"] == 300 and ev["forwards"] == 3 and ev["accuracy"] > 0.5
        metrics = user.ok("GET", f"/training-jobs/{job['id']}/metrics")
        assert metrics["train"]["iteration"] == [0, 10, 20]
        assert metrics["train"]["loss"][-1] < metrics["train"]["loss"][0]
    finally:
        server.stop()
