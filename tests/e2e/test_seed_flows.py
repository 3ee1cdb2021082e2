"""The seed's own documented client flows, replayed against a live `elasticthought serve`:

- its API description (apiary.apib): user foo/bar, an IMAGE_DATA datafile, a 0.7/0.3 dataset
  (`training`/`testing`), a solver by URL, a training job, its status (with an
  `Authorization: Token` header) and logs, a classifier with the seed's string-typed fields, and a
  multipart classify with repeated `urls` and `files` parts; the results in the seed's shape
  (`?format=seed`, and a classifier whose `result-format` is `seed`);
- its Paw file's MNIST flow: two DATA (LevelDB) datafiles, a dataset of them whole (key `test`,
  split 0.0), a solver, a training job and a classifier.

The requests keep the seed's keys, values, form fields and API paths. The seed's example URLs
point at its own hosts (`http://s3.com/...` in the apiary, `http://localhost:8080/example/...`
in the Paw file): here the same file paths are served by a loopback file server, holding the
seed's example files (the apiary's IMAGE_DATA archive is the seed's alphabet, under the
apiary's file names), with `max_iter`/`test_iter` shortened in the MNIST solver.
"""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.api import helpers as h
from tests.e2e.training_support import SERVER_ENV, edit_solver
from tests.support.server import LiveServer

pytestmark = pytest.mark.slow

MNIST_TRAIN_LMDB = h.SHARED / "golden" / "lenet" / "lenet_mnist_200" / "mnist_train_lmdb"
SEED_USER = {"username": "foo", "email": "foo@foo.net", "password": "bar"}
FOO = ("foo", "bar")
TRAINING_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[h.FileServer]:
    """The seed's example files at the paths its flows name."""
    root = tmp_path_factory.mktemp("seed-served")
    work = tmp_path_factory.mktemp("seed-build")
    # apiary.apib: http://s3.com/<name>
    shutil.copyfile(h.ALPHABET, root / "mnist-data.tar.gz")
    shutil.copyfile(h.SEED / "alphabet" / "alpha_solver.prototxt", root / "mnist_solver.prototxt")
    shutil.copyfile(h.SEED / "alphabet" / "alpha_net.prototxt", root / "mnist_train_test.prototxt")
    shutil.copyfile(h.SEED / "alphabet" / "classifier.prototxt", root / "mnist_classifier.prototxt")
    with tarfile.open(h.ALPHABET) as tar:
        for served, member in (
            ("imageurl1.png", "B/Arial-5-0.png"),
            ("imageurl2.png", "K/Verdana-5-0.png"),
            ("imagefile1.png", "Q/CourierNew-5-0.png"),
            ("imagefile2.png", "7/TimesNewRoman-5-0.png"),
        ):
            extracted = tar.extractfile(member)
            assert extracted is not None
            (root / served).write_bytes(extracted.read())
    # Paw: http://localhost:8080/example/mnist/...
    mnist = root / "example" / "mnist"
    (mnist / "data").mkdir(parents=True)
    for name in ("mnist_net.prototxt", "classifier.prototxt"):
        shutil.copyfile(h.SEED / "mnist" / name, mnist / name)
    solver = (h.SEED / "mnist" / "mnist_solver.prototxt").read_text()
    (mnist / "mnist_solver.prototxt").write_text(edit_solver(solver, max_iter=20, test_iter=2))
    for side, lmdb in (("train", MNIST_TRAIN_LMDB), ("test", h.MNIST_LMDB)):
        copy = work / f"mnist_{side}_lmdb"
        copy.mkdir()
        shutil.copyfile(lmdb / "data.mdb", copy / "data.mdb")
        leveldb = h.lmdb_to_leveldb(copy, work / f"mnist_{side}_leveldb")
        h.tar_folder(mnist / "data" / f"mnist_{side}_leveldb.tar.gz", leveldb, leveldb.name)
    server = h.FileServer(root)
    yield server
    server.close()


def seed_server(tmp_path: Path) -> LiveServer:
    """A server as a deployment for the seed's clients runs it."""
    return LiveServer(
        tmp_path,
        workers=1,
        args=["--min-password-length", "3", "--allow-private-urls", "--fetch-timeout", "30"],
        env=SERVER_ENV,
    ).start()


def post_json(server: LiveServer, path: str, body: dict, status: int = 201, **kw) -> dict:
    """POST a JSON body as the seed's clients did (Basic foo:bar unless `headers` say else)."""
    kw.setdefault("auth", FOO)
    response = requests.post(server.url + path, json=body, timeout=60, **kw)
    assert response.status_code == status, (path, response.status_code, response.text)
    return response.json()


def get_json(server: LiveServer, path: str, **kw) -> dict:
    kw.setdefault("auth", FOO)
    response = requests.get(server.url + path, timeout=60, **kw)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


def training_done(server: LiveServer, job_id: str, headers: dict | None = None) -> dict:
    """Poll the seed's status endpoint until the job ends; the status keys are the seed's."""
    auth = None if headers else FOO

    def final() -> dict | None:
        status = get_json(server, f"/training-jobs/{job_id}/status", auth=auth, headers=headers)
        assert {"id", "state", "loss", "last-iteration", "max-iterations", "logs"} <= set(status)
        return status if status["state"] in h.FINAL else None

    status = h.wait_for(final, f"training job {job_id}", timeout=TRAINING_TIMEOUT)
    assert status["state"] == "finished_successfully", get_json(
        server, f"/training-jobs/{job_id}"
    ).get("processing-log")
    return status


def test_apiary_flow(tmp_path: Path, seed_files: h.FileServer) -> None:
    server = seed_server(tmp_path)
    files = seed_files.url
    try:
        user = requests.post(server.url + "/users", json=SEED_USER, timeout=30)
        assert user.status_code == 201, user.text
        datafile = post_json(
            server, "/datafiles", {"url": f"{files}/mnist-data.tar.gz", "layers_type": "IMAGE_DATA"}
        )
        dataset = post_json(
            server,
            "/datasets",
            {
                "training": {"datafile-id": datafile["id"], "split-percentage": 0.7},
                "testing": {"datafile-id": datafile["id"], "split-percentage": 0.3},
            },
        )
        assert dataset["_id"] and dataset["processing-state"] == "pending"
        assert dataset["training"]["split-percentage"] == 0.7
        assert dataset["testing"]["split-percentage"] == 0.3
        solver = post_json(
            server,
            "/solvers",
            {
                "dataset-id": dataset["_id"],
                "specification-url": f"{files}/mnist_solver.prototxt",
                "specification-net-url": f"{files}/mnist_train_test.prototxt",
            },
        )
        job = post_json(server, "/training-jobs", {"solver-id": solver["id"]})
        assert job["processing-state"] == "pending"

        token = post_json(server, "/tokens", {"name": "apiary"})["token"]
        by_token = {"Authorization": f"Token {token}"}
        status = training_done(server, job["id"], headers=by_token)
        assert status["last-iteration"] == status["max-iterations"] == 50
        assert status["logs"].endswith(f"/training-jobs/{job['id']}/logs")
        logs = requests.get(
            server.url + f"/training-jobs/{job['id']}/logs", headers=by_token, timeout=60
        )
        assert logs.status_code == 200 and logs.headers["Content-Type"].startswith("text/plain")
        assert "Optimization Done." in logs.text

        seed_classifier = {
            "specification-url": f"{files}/mnist_classifier.prototxt",
            "training-job-id": job["id"],
            "scale": "255",
            "image-width": "28",
            "image-height": "28",
            "color": False,
            "gpu": False,
        }
        classifier = post_json(server, "/classifiers", seed_classifier)
        urls = [f"{files}/imageurl1.png", f"{files}/imageurl2.png"]
        uploads = ["imagefile1.png", "imagefile2.png"]
        parts = [("urls", (None, url)) for url in urls] + [
            (
                "files",
                (name, (Path(seed_files.root) / name).read_bytes(), "application/octet-stream"),
            )
            for name in uploads
        ]
        classify = requests.post(
            server.url + f"/classifiers/{classifier['id']}/classify",
            files=parts,
            auth=FOO,
            timeout=60,
        )
        assert classify.status_code == 201, classify.text
        queued = classify.json()
        assert queued["id"] and queued["processing-state"] == "pending"

        path = f"/classify-jobs/{queued['id']}"
        h.wait_for(
            lambda: get_json(server, path)["processing-state"] in h.FINAL, "classify job", 120
        )
        rich = get_json(server, path)
        assert rich["processing-state"] == "finished_successfully", rich.get("processing-log")
        seed = get_json(server, path, params={"format": "seed"})
        keys = [*urls, *uploads]
        labels = {m.name.split("/")[0] for m in tarfile.open(h.ALPHABET) if m.isdir()}
        # The seed's shape: {image key: label string}, one per image, the rich result's label.
        assert list(seed["results"]) == keys
        assert all(isinstance(v, str) and v in labels for v in seed["results"].values())
        assert seed["results"] == {k: str(rich["results"][k]["label"]) for k in keys}
        assert all(isinstance(rich["results"][k], dict) for k in keys)  # default stays rich

        # A classifier created for seed clients answers their shape without the query.
        seed_default = post_json(
            server, "/classifiers", {**seed_classifier, "result-format": "seed"}
        )
        assert seed_default["result-format"] == "seed"
        waited = requests.post(
            server.url + f"/classifiers/{seed_default['id']}/classify",
            params={"wait": "true"},
            files=parts,
            auth=FOO,
            timeout=90,
        )
        assert waited.status_code == 201, waited.text
        assert waited.json()["results"] == seed["results"]
        rich_again = get_json(server, f"/classify-jobs/{waited.json()['id']}?format=rich")
        assert rich_again["results"][keys[0]]["label"] == seed["results"][keys[0]]
        bad = requests.get(server.url + path, params={"format": "xml"}, auth=FOO, timeout=30)
        assert bad.status_code == 400 and "format" in bad.json()["detail"]
    finally:
        server.stop()


def test_paw_mnist_flow(tmp_path: Path, seed_files: h.FileServer) -> None:
    server = seed_server(tmp_path)
    example = f"{seed_files.url}/example/mnist"
    try:
        user = requests.post(server.url + "/users", json=SEED_USER, timeout=30)
        assert user.status_code == 201, user.text
        test_df = post_json(
            server,
            "/datafiles",
            {"url": f"{example}/data/mnist_test_leveldb.tar.gz", "layers_type": "DATA"},
        )
        train_df = post_json(
            server,
            "/datafiles",
            {"url": f"{example}/data/mnist_train_leveldb.tar.gz", "layers_type": "DATA"},
        )
        dataset = post_json(
            server,
            "/datasets",
            {
                "training": {"datafile-id": train_df["id"], "split-percentage": 0.0},
                "test": {"datafile-id": test_df["id"], "split-percentage": 0.0},
            },
        )
        # Stored under the canonical key; the alias never reaches the document.
        assert dataset["testing"]["datafile-id"] == test_df["id"] and "test" not in dataset
        solver = post_json(
            server,
            "/solvers",
            {
                "dataset-id": dataset["_id"],
                "specification-url": f"{example}/mnist_solver.prototxt",
                "specification-net-url": f"{example}/mnist_net.prototxt",
            },
        )
        job = post_json(server, "/training-jobs", {"solver-id": solver["id"]})
        status = training_done(server, job["id"])
        assert status["max-iterations"] == 20
        classifier = post_json(
            server,
            "/classifiers",
            {
                "specification-url": f"{example}/classifier.prototxt",
                "training-job-id": job["id"],
                "scale": "255",
                "image-width": "28",
                "image-height": "28",
                "color": False,
                "gpu": False,
            },
        )
        assert classifier["id"]
        done = get_json(server, f"/datasets/{dataset['_id']}")
        assert done["processing-state"] == "finished_successfully"
        assert done["testing"]["datafile-id"] == test_df["id"]
    finally:
        server.stop()
