"""The seed's data path over HTTP: datafiles (URL and upload; IMAGE_DATA and DATA as LevelDB
and LMDB), datasets with exact per-label split counts, solvers from the seed's prototxts."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.api import helpers as h


def _datafile(user, body=None, upload: Path | None = None, form=None) -> dict:
    if upload is not None:
        with open(upload, "rb") as f:
            made = user.ok("POST", "/datafiles", 201, files={"file": f}, data=form or {})
    else:
        made = user.ok("POST", "/datafiles", 201, json=body)
    assert made["processing-state"] == "pending" and made["user-id"] == f"user:{user.username}"
    return user.wait(f"/datafiles/{made['id']}")


def _dataset(user, train_id, test_id, pct=0.7, mean=False) -> dict:
    same = train_id == test_id
    body = {
        "training": {"datafile-id": train_id, "split-percentage": pct if same else 0},
        "testing": {"datafile-id": test_id, "split-percentage": round(1 - pct, 10) if same else 0},
    }
    if mean:
        body["compute-mean"] = True
    made = user.ok("POST", "/datasets", 201, json=body)
    return user.wait(f"/datasets/{made['id']}")


def _alphabet_labels_in_archive_order() -> list[str]:
    with tarfile.open(h.ALPHABET) as tar:
        return [m.name.split("/")[0] for m in tar.getmembers() if m.isfile()]


def test_alphabet_image_data(api, files, tmp_path):
    user = h.new_user(api.url)
    by_url = _datafile(user, {"url": files.url + "/alphabet.tar.gz", "layers_type": "IMAGE_DATA"})
    by_upload = _datafile(user, upload=h.ALPHABET, form={"layers_type": "IMAGE_DATA"})
    labels = _alphabet_labels_in_archive_order()
    want_counts = {label: labels.count(label) for label in sorted(set(labels))}
    for doc in (by_url, by_upload):
        assert doc["processing-state"] == "finished_successfully", doc["processing-log"]
        assert doc["label-counts"] == want_counts and doc["labels"] == sorted(set(labels))
        assert doc["image-count"] == len(labels)
    assert by_upload["uploaded"] and by_upload["filename"] == "alphabet.tar.gz"

    split = _dataset(user, by_url["id"], by_url["id"], 0.7, mean=True)
    assert split["processing-state"] == "finished_successfully", split["processing-log"]
    train, test = h.expected_split(labels, 7)
    art = split["artifacts"]
    assert art["training"]["label-counts"] == train
    assert art["testing"]["label-counts"] == {k: test.get(k, 0) for k in train}
    assert art["training"]["count"] == sum(train.values())
    assert art["testing"]["count"] == sum(test.values())
    assert split["labels"] == by_url["labels"] and split["layers_type"] == "IMAGE_DATA"

    # The artifacts are in the form training reads (ImageData list + images; mean blob).
    blobs = api.data_dir / "blobs"
    lines = (blobs / art["training"]["list"]).read_text().splitlines()
    assert len(lines) == art["training"]["count"]
    with tarfile.open(blobs / art["training"]["archive"]) as tar:
        names = set(tar.getnames())
    for line in lines:
        name, index = line.rsplit(" ", 1)
        assert name in names and split["labels"][int(index)] == name.split("/")[0]
    from elasticthought.engine.caffemodel import read_mean_binaryproto

    mean = read_mean_binaryproto((blobs / art["mean"]).read_bytes())
    assert mean.shape == (1, 28, 28) and 0 < float(mean.mean()) < 255

    paired = _dataset(user, by_url["id"], by_upload["id"])
    assert paired["processing-state"] == "finished_successfully", paired["processing-log"]
    assert paired["artifacts"]["training"]["label-counts"] == want_counts
    assert paired["artifacts"]["testing"]["label-counts"] == want_counts

    seed = files.url + "/alphabet"
    by_url_solver = user.ok(
        "POST",
        "/solvers",
        201,
        json={
            "dataset-id": split["id"],
            "specification-url": seed + "/alpha_solver.prototxt",
            "specification-net-url": seed + "/alpha_net.prototxt",
        },
    )
    net_text = (h.SEED / "alphabet/alpha_net.prototxt").read_text()
    assert by_url_solver["specification-net"] == net_text
    assert by_url_solver["layers_type"] == "IMAGE_DATA"
    inline = user.ok(
        "POST",
        "/solvers",
        201,
        json={
            "dataset-id": paired["id"],
            "specification": (h.SEED / "alphabet/alpha_solver.prototxt").read_text(),
            "specification-net": (h.SEED / "alphabet/alpha_net.prototxt").read_text(),
        },
    )
    assert inline["specification-url"] is None and inline["dataset-id"] == paired["id"]
    listed = user.ok("GET", "/solvers")["items"]
    assert [s["id"] for s in listed] == [inline["id"], by_url_solver["id"]]  # newest first
    page = user.ok("GET", "/solvers?limit=1&skip=1")["items"]
    assert [s["id"] for s in page] == [by_url_solver["id"]]

    # A DATA net does not fit an IMAGE_DATA dataset.
    r = user.post(
        "/solvers",
        json={
            "dataset-id": split["id"],
            "specification": (h.SEED / "mnist/mnist_solver.prototxt").read_text(),
            "specification-net": (h.SEED / "mnist/mnist_net.prototxt").read_text(),
        },
    )
    assert r.status_code == 422 and "IMAGE_DATA" in r.json()["detail"], r.text


@pytest.mark.parametrize("backend", ["LEVELDB", "LMDB"])
def test_mnist_data(api, files, tmp_path, backend):
    user = h.new_user(api.url)
    archive = {"LEVELDB": "mnist_leveldb.tar.gz", "LMDB": "mnist_lmdb.tar.gz"}[backend]
    df = _datafile(
        user,
        {
            "url": f"{files.url}/{archive}",
            "layers_type": "DATA",
            "layers_data_param": {"backend": backend},
        },
    )
    assert df["processing-state"] == "finished_successfully", df["processing-log"]
    labels = h.labels_in_key_order(h.copy_lmdb(tmp_path / "db"), "lmdb")
    assert df["record-count"] == len(labels) == 1000
    assert df["labels"] == sorted(set(labels))
    assert df["label-counts"] == {str(k): labels.count(k) for k in sorted(set(labels))}

    ds = _dataset(user, df["id"], df["id"], 0.7, mean=backend == "LMDB")
    assert ds["processing-state"] == "finished_successfully", ds["processing-log"]
    train, test = h.expected_split(labels, 7)
    art = ds["artifacts"]
    assert art["training"]["label-counts"] == {str(k): v for k, v in sorted(train.items())}
    assert art["testing"]["label-counts"] == {str(k): v for k, v in sorted(test.items())}
    assert ds["backend"] == backend and art["training"]["format"] == backend.lower()

    # The training split is a database of the same records, in key order.
    out = tmp_path / "training"
    with tarfile.open(api.data_dir / "blobs" / art["training"]["archive"]) as tar:
        tar.extractall(out, filter="data")
    got = h.labels_in_key_order(out, backend.lower())
    assert len(got) == sum(train.values())
    if backend == "LMDB":
        from elasticthought.engine.caffemodel import read_mean_binaryproto

        mean = read_mean_binaryproto((api.data_dir / "blobs" / art["mean"]).read_bytes())
        assert mean.shape == (1, 28, 28)

    solver = user.ok(
        "POST",
        "/solvers",
        201,
        json={
            "dataset-id": ds["id"],
            "specification-url": files.url + "/mnist/mnist_solver.prototxt",
            "specification-net-url": files.url + "/mnist/mnist_net.prototxt",
        },
    )
    assert solver["layers_type"] == "DATA"
    r = user.post(
        "/solvers",
        json={
            "dataset-id": ds["id"],
            "specification-url": files.url + "/alphabet/alpha_solver.prototxt",
            "specification-net-url": files.url + "/alphabet/alpha_net.prototxt",
        },
    )
    assert r.status_code == 422 and "ImageData" in r.json()["detail"]
