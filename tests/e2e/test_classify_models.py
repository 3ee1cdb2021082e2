"""Classifiers from uploaded models over HTTP against a live `elasticthought serve` (one worker),
on both store backends: the seed's MNIST classifier with real Caffe's trained LeNet (DATA: label
numbers, probabilities as real Caffe computed them), labels given by name, isolation between
users, and bad input (prototxt line/column, model/net mismatch, non-image uploads, private
URLs)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.api import helpers as h
from tests.e2e.classify_support import (
    MNIST_DEPLOY,
    classify,
    finished_job,
    golden_digits,
    upload_classifier,
)
from tests.e2e.training_support import start_server, store_url
from tests.support.server import LiveServer


@pytest.fixture(scope="module", params=["sqlite", "couch"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(
        tmp_path_factory.mktemp(f"classify-{request.param}"), store_url(request, request.param)
    )
    srv.backend = request.param  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def test_seed_mnist_classifier_gives_caffes_probabilities(server, classify_files):
    user = h.new_user(server.url, "mnist")
    response = upload_classifier(user, classify_files)
    assert response.status_code == 201, response.text
    clf = response.json()
    assert clf["type"] == "classifier" and clf["label-kind"] == "numbers"
    assert (clf["scale"], clf["image-width"], clf["image-height"]) == (255.0, 28, 28)
    assert (clf["color"], clf["gpu"]) == (False, False)
    assert clf["input-shape"] == [1, 1, 28, 28] and clf["classes"] == 10
    assert clf["output-blob"] == "prob" and clf["softmax-applied"] is False
    assert user.ok("GET", f"/classifiers/{clf['id']}") == clf
    assert [c["id"] for c in user.ok("GET", "/classifiers")["items"]] == [clf["id"]]

    images, labels, probs = golden_digits()
    urls = [f"{classify_files.url}/digits/{i}.png" for i in range(10)]
    uploads = [(f"digit{i}.png", images[i]) for i in range(10, 20)]
    job = finished_job(classify(user, clf["id"], urls, uploads))
    assert job["type"] == "classify-job" and job["classifier-id"] == clf["id"]
    results = job["results"]
    assert list(results) == urls + [name for name, _ in uploads]
    assert job["classified-images"] == 20 and job["failed-images"] == 0
    for i, key in enumerate(results):
        got = results[key]
        want = probs[i]
        assert got["label"] == got["label-index"] == int(np.argmax(want))
        assert isinstance(got["label"], int)
        assert got["probability"] == pytest.approx(float(want.max()), abs=1e-4)
        top = got["top-5"]
        assert [t["label"] for t in top] == list(np.argsort(-want, kind="stable")[:5])
        assert [t["probability"] for t in top] == pytest.approx(
            sorted(want, reverse=True)[:5], abs=1e-4
        )
    # LeNet after 200 iterations gets these 20 digits mostly right (as real Caffe did).
    agree = sum(results[k]["label"] == labels[i] for i, k in enumerate(results))
    assert agree == int((probs.argmax(axis=1) == labels).sum())

    assert [j["id"] for j in user.ok("GET", "/classify-jobs")["items"]] == [job["id"]]
    assert user.ok("GET", f"/classify-jobs/{job['id']}")["results"] == results


def test_model_url_with_label_names(server, classify_files):
    user = h.new_user(server.url, "names")
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    clf = user.ok(
        "POST", "/classifiers", 201,
        json={"specification": MNIST_DEPLOY.read_text(),
              "model-url": classify_files.url + "/lenet.caffemodel", "labels": names,
              "scale": 255, "image-width": 28, "image-height": 28, "color": False,
              "transform": {"scale": 0.00390625}},
    )  # fmt: skip
    assert clf["label-kind"] == "names" and clf["labels"] == names
    images, _, probs = golden_digits()
    job = finished_job(classify(user, clf["id"], uploads=[("a.png", images[0])]))
    got = job["results"]["a.png"]
    assert got["label"] == names[int(np.argmax(probs[0]))]
    assert got["top-5"][0]["label"] == got["label"]
    assert all(t["label"] in names for t in got["top-5"])


def test_another_users_classifier_and_jobs_are_missing(server, classify_files):
    owner = h.new_user(server.url, "own")
    other = h.new_user(server.url, "oth")
    clf = upload_classifier(owner, classify_files).json()
    images, _, _ = golden_digits()
    job = classify(owner, clf["id"], uploads=[("x.png", images[0])], wait=False)
    for method, path in (
        ("GET", f"/classifiers/{clf['id']}"),
        ("DELETE", f"/classifiers/{clf['id']}"),
        ("GET", f"/classify-jobs/{job['id']}"),
        ("DELETE", f"/classify-jobs/{job['id']}"),
        ("POST", f"/classify-jobs/{job['id']}/cancel"),
    ):
        assert other.call(method, path).status_code == 404, (method, path)
    r = other.post(
        f"/classifiers/{clf['id']}/classify", files=[("files", ("x.png", images[0], "image/png"))]
    )
    assert r.status_code == 404
    assert other.ok("GET", "/classifiers")["items"] == []
    assert other.ok("GET", "/classify-jobs")["items"] == []
    assert h.Client(server.url).get("/classifiers").status_code == 401
    # the owner still has both, and can delete them (job first: it uses the classifier)
    assert owner.ok("GET", f"/classifiers/{clf['id']}")["id"] == clf["id"]
    finished_job(owner.wait(f"/classify-jobs/{job['id']}"))
    assert owner.delete(f"/classify-jobs/{job['id']}").status_code == 204
    assert owner.delete(f"/classifiers/{clf['id']}").status_code == 204
    assert owner.get(f"/classifiers/{clf['id']}").status_code == 404


def test_bad_input(server, classify_files):
    user = h.new_user(server.url, "bad")
    text = MNIST_DEPLOY.read_text()

    lines = text.splitlines()
    assert lines[9].strip() == 'bottom: "data"'
    lines[9] = "  bottom: data data"  # line 10: an unquoted string
    r = upload_classifier(
        user, classify_files, **{"specification-url": None, "specification": "\n".join(lines)}
    )
    assert r.status_code == 422, r.text
    assert "line 10" in r.json()["detail"] and "column" in r.json()["detail"]

    mismatch = text.replace("num_output: 500", "num_output: 400")
    r = upload_classifier(
        user, classify_files, **{"specification-url": None, "specification": mismatch}
    )
    assert r.status_code == 422, r.text
    assert "'ip1'" in r.json()["detail"] and "shape" in r.json()["detail"]

    renamed = text.replace('name: "ip2"', 'name: "fc2"')
    r = upload_classifier(
        user, classify_files, **{"specification-url": None, "specification": renamed}
    )
    assert r.status_code == 422 and "'fc2'" in r.json()["detail"], r.text

    r = upload_classifier(user, classify_files, color="true")
    assert r.status_code == 422 and "channel" in r.json()["detail"], r.text
    r = upload_classifier(user, classify_files, **{"image-width": "32"})
    assert r.status_code == 422 and "28" in r.json()["detail"], r.text
    cropping = {"transform": '{"scale": 0.00390625, "crop_size": 28}', "image-height": "7100"}
    r = upload_classifier(user, classify_files, **cropping, **{"image-width": "7100"})
    assert r.status_code == 422, r.text  # images would be resized to 50.4 M pixels first
    assert "7100 x 7100 = 50410000 pixels, over the limit" in r.json()["detail"], r.text
    r = upload_classifier(user, classify_files, scale="lots")
    assert r.status_code == 400 and "'scale'" in r.json()["detail"], r.text
    r = user.post(
        "/classifiers", json={"specification": text, "training-job-id": "nope", "scale": "255"}
    )
    assert r.status_code == 422 and "training job" in r.json()["detail"], r.text
    r = user.post(
        "/classifiers",
        files=[("specification", (None, text)), ("model", ("m.caffemodel", b"not a model"))],
    )
    assert r.status_code == 422 and "caffemodel" in r.json()["detail"], r.text
    assert user.ok("GET", "/classifiers")["items"] == []  # nothing half-made was kept

    clf = upload_classifier(user, classify_files).json()
    images, _, probs = golden_digits()
    job = finished_job(
        classify(
            user,
            clf["id"],
            uploads=[
                ("notes.txt", b"this is not an image"),
                ("good.png", images[0]),
            ],
        )
    )
    assert "cannot decode image" in job["results"]["notes.txt"]["error"]
    assert job["results"]["good.png"]["label"] == int(np.argmax(probs[0]))
    assert job["failed-images"] == 1 and job["classified-images"] == 1

    missing = classify_files.url + "/digits/missing.png"
    job = finished_job(classify(user, clf["id"], urls=[missing]))
    assert "404" in job["results"][missing]["error"]
    r = user.post(f"/classifiers/{clf['id']}/classify", files=[("urls", (None, "ftp://x/y"))])
    assert r.status_code == 422 and "urls[0]" in r.json()["detail"], r.text
    r = user.post(f"/classifiers/{clf['id']}/classify", files=[("other", (None, "x"))])
    assert r.status_code == 400
    url = f"/classifiers/{clf['id']}/classify"
    for body in (b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"x\"\r\n"
                 b"\r\ncut short", b"no boundary in here"):  # fmt: skip
        r = user.post(url, data=body, params={"wait": "true"},
                      headers={"Content-Type": "multipart/form-data; boundary=b"})  # fmt: skip
        assert r.status_code == 400 and "multipart" in r.json()["detail"], r.text
    r = user.post(url, data=b"", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 400 and "boundary" in r.json()["detail"], r.text
    many = [("files", (f"{i}.png", b"x", "image/png")) for i in range(1002)]
    r = user.post(url, files=many)
    assert r.status_code == 413 and "parts" in r.json()["detail"], r.text


def test_private_urls_refused(server, classify_files, tmp_path):
    """Without --allow-private-urls, loopback/private image URLs are refused at once."""
    store = None if server.backend == "sqlite" else server.store + "-strict"
    with LiveServer(tmp_path / "strict", store=store, workers=0) as srv:
        user = h.new_user(srv.url, "strict")
        r = upload_classifier(
            user,
            classify_files,
            **{"specification-url": None, "specification": MNIST_DEPLOY.read_text()},
        )
        assert r.status_code == 201, r.text
        clf = r.json()
        for url in (
            classify_files.url + "/digits/0.png",
            "http://10.1.2.3/a.png",
            "http://169.254.169.254/latest/meta-data",
        ):
            r = user.post(f"/classifiers/{clf['id']}/classify", files=[("urls", (None, url))])
            assert r.status_code == 422, r.text
            assert "refused" in r.json()["detail"], r.text
        r = user.post(
            "/classifiers",
            json={
                "specification": MNIST_DEPLOY.read_text(),
                "model-url": classify_files.url + "/lenet.caffemodel",
            },
        )
        assert r.status_code == 422 and "model-url" in r.json()["detail"], r.text
