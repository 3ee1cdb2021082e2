"""The seed's alphabet flow over HTTP on engine `caffe` (real BVLC Caffe), against a live
`elasticthought serve` with one worker; and a clear 422 for an engine no worker offers."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import requests

from elasticthought.engine.caffe import classify as caffe_classify
from elasticthought.engine.caffemodel import read_caffemodel, read_solverstate
from tests.api import helpers as h
from tests.e2e.training_support import (  # noqa: F401 - fixtures
    alphabet_solver,
    finished,
    start_server,
    train,
    train_files,
    wait_for,
)

pytestmark = [pytest.mark.caffe, pytest.mark.slow]
IMAGES = ["A/Arial-5-0.png", "B/TimesNewRoman-5-0.png", "7/CourierNew-5-0.png"]


def _caffe_args(runtime: dict) -> tuple[str, ...]:
    return ("--caffe-python", runtime["python"], "--caffe-prefix", runtime["prefix"])


def _members(names: list[str]) -> dict[str, bytes]:
    with tarfile.open(h.ALPHABET) as tar:
        return {n: tar.extractfile(n).read() for n in names}  # type: ignore[union-attr]


def _classifier(user, train_files, job_id: str, **extra) -> dict:  # noqa: F811
    return user.ok(
        "POST",
        "/classifiers",
        201,
        json={
            "specification-url": train_files.url + "/alphabet/classifier.prototxt",
            "training-job-id": job_id,
            "scale": "255",
            "image-width": "28",
            "image-height": "28",
            "color": "false",
            "gpu": "false",
            **extra,
        },
    )


def _classify(user, classifier_id: str, images: dict[str, bytes]) -> dict:
    """The finished classify job of `images` (uploads) on one classifier."""
    files = [("files", (name, data, "image/png")) for name, data in images.items()]
    made = user.post(
        f"/classifiers/{classifier_id}/classify",
        files=files,
        params={"wait": "true"},
        timeout=120,
    )
    assert made.status_code == 201, made.text
    result = made.json()
    if result["processing-state"] != "finished_successfully":
        result = user.wait(f"/classify-jobs/{result['id']}", timeout=120)
    assert result["processing-state"] == "finished_successfully", result
    return result


def test_alphabet_flow_on_real_caffe(
    caffe_runtime,
    tmp_path,
    train_files,  # noqa: F811
    tmp_path_factory,
):
    server = start_server(tmp_path, None, args=_caffe_args(caffe_runtime))
    try:
        user = h.new_user(server.url, "caffe")
        # the seed's solver and V1 nets, shortened (a batch is 500 images): 20 iterations
        solver = alphabet_solver(user, train_files, max_iter=20, snapshot=10, test_iter=5)
        # the worker probes pycaffe in the background, then advertises engine caffe
        wait_for(
            lambda: any(
                "caffe" in w["capabilities"].get("engines", [])
                for w in user.ok("GET", "/workers")["items"]
            ),
            "a worker offering engine caffe",
            timeout=90,
        )
        job = train(user, solver["id"], engine="caffe")
        assert job["engine"] == "caffe"
        doc = finished(user, job["id"])
        assert doc["labels"] == [str(i) for i in range(10)] + [chr(c) for c in range(65, 91)]

        status = user.ok("GET", f"/training-jobs/{job['id']}/status")
        assert status["state"] == "finished_successfully" and status["engine"] == "caffe"
        assert status["engine-version"] == f"BVLC Caffe {caffe_runtime['version']}"
        assert doc["engine-version"] == status["engine-version"]
        assert status["last-iteration"] == status["max-iterations"] == 20
        assert isinstance(status["loss"], float) and isinstance(status["lr"], float)
        assert [t["iteration"] for t in status["test-outputs"]] == [0]
        metrics = user.ok("GET", f"/training-jobs/{job['id']}/metrics")
        assert metrics["train"]["iteration"] == [0, 10]  # display: 10

        text = user.get(status["logs"], timeout=30).text  # a relative link
        # real Caffe's own glog lines (its source files), not the torch engine's
        assert "solver.cpp" in text and "sgd_solver.cpp" in text
        assert "Iteration 10 (" in text and "Optimization Done." in text

        model = user.get(f"/training-jobs/{job['id']}/model")
        assert model.status_code == 200
        layers = [layer.name for layer in read_caffemodel(model.content).layer if layer.blobs]
        assert layers == ["conv1", "conv2", "ip1", "ip2"]
        snaps = user.ok("GET", f"/training-jobs/{job['id']}/snapshots")["items"]
        assert [s["iteration"] for s in snaps] == [10, 20]
        state = user.get(f"/training-jobs/{job['id']}/snapshots/{snaps[-1]['solverstate']['name']}")
        assert read_solverstate(state.content).iter == 20

        # Classification with the trained model answers label names. A classifier of a
        # caffe-trained job classifies with real Caffe (caffe.Net); one asking for engine torch
        # gives the same probabilities from the same preprocessed input.
        images = _members(IMAGES)
        clf = _classifier(user, train_files, job["id"])
        assert clf["engine"] == "caffe"
        result = _classify(user, clf["id"], images)
        assert result["engine"] == "caffe"
        results = result["results"]
        assert len(results) == len(IMAGES)

        torch_clf = _classifier(user, train_files, job["id"], engine="torch")
        assert torch_clf["engine"] == "torch"
        torch_result = _classify(user, torch_clf["id"], images)
        assert torch_result["engine"] == "torch"
        assert list(torch_result["results"]) == list(results)
        for name, got in results.items():
            want = torch_result["results"][name]
            assert got["label"] == want["label"]
            probs = [t["probability"] for t in got["top-5"]]
            assert probs == pytest.approx([t["probability"] for t in want["top-5"]], abs=1e-4)

        model_path = tmp_path_factory.mktemp("model") / "model.caffemodel"
        model_path.write_bytes(model.content)
        from PIL import Image

        batch = np.stack(
            [
                np.asarray(Image.open(io.BytesIO(data)).convert("L"), np.float32)[None] * 0.00390625
                for data in images.values()
            ]
        )
        deploy = tmp_path_factory.mktemp("deploy") / "classifier.prototxt"
        deploy.write_bytes(
            requests.get(train_files.url + "/alphabet/classifier.prototxt", timeout=30).content
        )
        probs = caffe_classify(
            deploy,
            model_path,
            batch,
            python=caffe_runtime["python"],
            prefix=caffe_runtime["prefix"],
        )
        prob = next(iter(probs.values())).reshape(len(IMAGES), -1)
        for i, got in enumerate(results.values()):
            best = int(prob[i].argmax())
            assert got["label"] == doc["labels"][best]
            assert got["probability"] == pytest.approx(float(prob[i].max()), abs=1e-4)
    finally:
        server.stop()


def test_engine_no_worker_offers_is_422(tmp_path, train_files):  # noqa: F811
    server = start_server(tmp_path, None, args=("--engines", "torch"))
    try:
        user = h.new_user(server.url, "noc")
        solver = alphabet_solver(user, train_files)
        r = user.post("/training-jobs", json={"solver-id": solver["id"], "engine": "caffe"})
        assert r.status_code == 422, r.text
        assert "caffe" in r.json()["detail"] and "torch" in r.json()["detail"]
        assert user.ok("GET", "/training-jobs")["items"] == []
        # a classifier asking for engine caffe: the same clear 422, before anything is stored
        r = user.post(
            "/classifiers",
            json={
                "specification-url": train_files.url + "/alphabet/classifier.prototxt",
                "model-url": train_files.url + "/alphabet/classifier.prototxt",
                "engine": "caffe",
            },
        )
        assert r.status_code == 422, r.text
        assert "caffe" in r.json()["detail"] and "torch" in r.json()["detail"]
        assert user.ok("GET", "/classifiers")["items"] == []
    finally:
        server.stop()
