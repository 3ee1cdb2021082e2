"""Bad input over HTTP: each gets a 4xx naming the problem or a `failed` datafile with the
reason, and the server keeps serving."""

from __future__ import annotations

import os

import pytest
import requests

from tests.api import helpers as h
from tests.api.conftest import MAX_UPLOAD


def _failed_datafile(user, url: str, **extra) -> str:
    made = user.ok("POST", "/datafiles", 201, json={"url": url, **extra})
    doc = user.wait(f"/datafiles/{made['id']}")
    assert doc["processing-state"] == "failed", doc
    return doc["processing-log"]


def test_hostile_and_broken_datafiles(api, files):
    user = h.new_user(api.url)
    cases = [
        ("dotdot.tar.gz", {}, "'..' paths are not allowed"),
        ("symlink.tar.gz", {}, "links are not allowed"),
        ("bomb.tar.gz", {}, "limit"),
        ("notimages.tar.gz", {}, "not an image"),
        ("pixelbomb.tar.gz", {}, "pixels, over the limit of"),
        ("missing.tar.gz", {}, "HTTP 404"),
        ("alphabet.tar.gz", {"layers_type": "DATA"}, "no LevelDB"),
        (
            "mnist_lmdb.tar.gz",
            {"layers_type": "DATA", "layers_data_param": {"backend": "LEVELDB"}},
            "backend is LEVELDB but the archive holds a LMDB",
        ),
        ("mnist_lmdb.tar.gz", {"layers_type": "IMAGE_DATA"}, "'mnist_test_lmdb/data.mdb' is not"),
    ]
    made = {}
    for name, extra, _ in cases:  # queue them all, then wait: the two workers overlap them
        doc = user.ok("POST", "/datafiles", 201, json={"url": f"{files.url}/{name}", **extra})
        made[(name, str(extra))] = doc["id"]
    for name, extra, reason in cases:
        doc = user.wait(f"/datafiles/{made[(name, str(extra))]}")
        assert doc["processing-state"] == "failed", (name, doc)
        assert reason in doc["processing-log"], (name, doc["processing-log"])
    assert requests.get(api.url + "/health").status_code == 200


@pytest.mark.parametrize(
    "body, status, words",
    [
        ("[1, 2]", 400, ["JSON object"]),
        ("not json", 400, ["not valid JSON"]),
        ("", 400, ["empty"]),
        ('{"url": "http://example.org/x.tar.gz", "colour": 1}', 400, ["unknown", "colour"]),
        ('{"url": "http://example.org/a", "layers_type": "VIDEO"}', 400, ["layers_type"]),
        (
            '{"url": "http://example.org/a", "layers_data_param": {"backend": "HDF5"}}',
            400,
            ["backend"],
        ),
        ('{"url": "http://example.org/a", "layers_data_param": {"x": 1}}', 400, ["unknown", "x"]),
        ('{"url": "ftp://example.org/a.tar.gz"}', 422, ["scheme"]),
        ('{"url": "file:///etc/passwd"}', 422, ["file://"]),
        ('{"url": 7}', 400, ["url"]),
    ],
)
def test_bad_datafile_requests(api, body, status, words):
    user = h.new_user(api.url)
    r = user.post("/datafiles", data=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert all(w in detail for w in words), detail
    assert set(r.json()) == {"error", "detail"}


def test_upload_over_limit(api):
    user = h.new_user(api.url)
    r = user.post("/datafiles", files={"file": ("big.tar.gz", os.urandom(MAX_UPLOAD + 1000))})
    assert r.status_code == 413, r.text
    assert r.json()["error"]
    r = user.post("/datafiles", files={"file": ("a.tar.gz", b"x")}, data={"colour": "red"})
    assert r.status_code == 400 and "colour" in r.json()["detail"]
    assert user.ok("GET", "/datafiles")["items"] == []
    assert requests.get(api.url + "/health").status_code == 200


def test_private_address_refused_by_default(closed_server, files):
    admin = h.Client(closed_server.url, "root", "rootpass1")
    for url in (
        files.url + "/alphabet.tar.gz",
        "http://10.1.2.3/a.tar.gz",
        "http://169.254.169.254/latest",
        "http://[::1]:80/x",
    ):
        r = admin.post("/datafiles", json={"url": url})
        assert r.status_code == 422, r.text
        assert "allow-private-urls" in r.json()["detail"]
    # the same policy holds in the child processes that make a request's downloads
    deploy = "input: 'data'\ninput_shape { dim: 1 dim: 1 dim: 8 dim: 8 }\n"
    for url in (files.url + "/bad_net.prototxt", "http://[::ffff:127.0.0.1]/x"):
        for field, body in (
            ("specification-url", {"specification-url": url}),
            ("model-url", {"specification": deploy, "model-url": url}),
        ):
            r = admin.post("/classifiers", json=body)
            assert r.status_code == 422, r.text
            assert f"'{field}'" in r.json()["detail"]
            assert "allow-private-urls" in r.json()["detail"], r.text
    r = admin.post("/classifiers", json={"specification-url": "file:///etc/passwd"})
    assert r.status_code == 422 and "allow-file-urls" in r.json()["detail"], r.text


def test_bad_solvers(api, files):
    user = h.new_user(api.url)
    df, ds = h.alphabet_dataset(user, files)
    solver_text = (h.SEED / "alphabet/alpha_solver.prototxt").read_text()
    net_text = (h.SEED / "alphabet/alpha_net.prototxt").read_text()

    def post(**body):
        return user.post("/solvers", json={"dataset-id": ds["id"], **body})

    bad_url = files.url + "/bad_net.prototxt"
    r = post(specification=solver_text, **{"specification-net-url": bad_url})
    assert r.status_code == 422 and "line 10" in r.json()["detail"], r.text
    assert "column" in r.json()["detail"]
    r = post(specification="base_lr: 0.01\nmax_iter: oops\n", **{"specification-net": net_text})
    assert r.status_code == 422 and "line 2" in r.json()["detail"], r.text
    fancy = (
        'layer { name: "d" type: "ImageData" top: "data" top: "label"\n'
        '  image_data_param { source: "x" batch_size: 1 } }\n'
        'layer { name: "f" type: "FancyLayer" bottom: "data" top: "f" }\n'
    )
    r = post(specification=solver_text, **{"specification-net": fancy})
    assert r.status_code == 422 and "'FancyLayer'" in r.json()["detail"], r.text
    r = post(specification=solver_text, **{"specification-net-url": files.url + "/nope.txt"})
    assert r.status_code == 422 and "404" in r.json()["detail"]
    r = post(specification=solver_text)
    assert r.status_code == 400 and "specification-net" in r.json()["detail"]
    r = post(specification=solver_text, **{"specification-net": net_text, "gpu": True})
    assert r.status_code == 400 and "gpu" in r.json()["detail"]
    r = user.post(
        "/solvers",
        json={
            "dataset-id": "dataset:x:y",
            "specification": solver_text,
            "specification-net": net_text,
        },
    )
    assert r.status_code == 422 and "dataset-id" in r.json()["detail"]
    for body, word in [
        (
            {
                "training": {"datafile-id": df["id"], "split-percentage": 1.5},
                "testing": {"datafile-id": df["id"]},
            },
            "split-percentage",
        ),
        (
            {
                "training": {"datafile-id": df["id"], "split-percentage": 0.7},
                "testing": {"datafile-id": df["id"], "split-percentage": 0.5},
            },
            "1 - ",
        ),
        ({"training": {"datafile-id": df["id"]}}, "testing"),
        ({"training": "x", "testing": {"datafile-id": df["id"]}}, "training"),
    ]:
        r = user.post("/datasets", json=body)
        assert r.status_code == 400 and word in r.json()["detail"], r.text
    assert requests.get(api.url + "/health").status_code == 200
