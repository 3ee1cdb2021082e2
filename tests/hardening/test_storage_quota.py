"""Attack: fill the blob store past one's stored-bytes quota (`--max-stored-bytes-per-user`)
by other ways than a multipart upload: a datafile downloaded by URL (the job stops downloading
and fails naming the quota), a classifier `model-url` (413 naming the quota). Live `serve`,
embedded store, one worker; plus the rule's own unit tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from elasticthought.blobs.file import FileBlobStore
from elasticthought.storage_quota import (
    FLAG,
    QuotaExceeded,
    QuotaGuard,
    check_stored_bytes,
    room_left,
    stored_bytes,
)
from tests.api import helpers as h
from tests.hardening.test_request_downloads import DEPLOY, RecordingServer
from tests.support.server import LiveServer

QUOTA = 2_000_000
BIG = 50_000_000  # what the attacker's URL would deliver


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(
        tmp_path,
        workers=1,
        args=["--allow-private-urls", "--max-stored-bytes-per-user", str(QUOTA)],
    ) as srv:
        yield srv


def _fill(user: h.Client, size: int) -> None:
    """Store `size` bytes for `user` (a multipart datafile upload)."""
    user.ok("POST", "/datafiles", 201, files={"file": ("a.tar.gz", b"\0" * size)})


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "no-length"])
def test_datafile_download_stops_at_the_quota(server: LiveServer, declare: bool) -> None:
    """A datafile URL serving 50 MB to a user with 1.5 MB of their 2 MB quota used: the job
    stops downloading (the URL's server sent far less than 50 MB) and ends failed naming the
    flag and the numbers; nothing of it stays in the blob store."""
    user = h.new_user(server.url, "hoard")
    _fill(user, 1_500_000)
    big = RecordingServer(drip=False, size=BIG, declare=declare)
    try:
        df = user.ok("POST", "/datafiles", 201, json={"url": big.url + "/a.tar.gz"})
        doc = user.wait(f"/datafiles/{df['id']}", timeout=120)
    finally:
        big.close()
    assert doc["processing-state"] == "failed", doc
    log = doc["processing-log"]
    assert FLAG in log and str(QUOTA) in log and "1500000 bytes used" in log, log
    assert big.sent < BIG // 2, f"the job downloaded {big.sent} bytes"
    archive = server.data_dir / "blobs" / df["id"].replace(":", "/") / "archive.tar.gz"
    assert not archive.exists()


def test_classifier_model_url_past_the_quota_is_413(server: LiveServer) -> None:
    """A classifier model-url of 50 MB (declared or not) for a user whose quota has 0.5 MB
    left: 413 naming the quota flag; no classifier blob stays."""
    user = h.new_user(server.url, "model")
    _fill(user, 1_500_000)
    for declare in (True, False):
        big = RecordingServer(drip=False, size=BIG, declare=declare)
        try:
            r = user.post(
                "/classifiers", json={"specification": DEPLOY, "model-url": big.url + "/m"}
            )
        finally:
            big.close()
        assert r.status_code == 413, r.text
        assert FLAG in r.json()["detail"] and "model-url" in r.json()["detail"], r.text
        assert big.sent < BIG // 2
    assert not [p for p in (server.data_dir / "blobs" / "classifier").rglob("*") if p.is_file()]


def test_the_rule(tmp_path: Path) -> None:
    """Usage counts only the owner's own blobs (not a user whose name starts the same), can
    leave out a blob about to be replaced; the guard stops before the quota is passed."""
    blobs = FileBlobStore(f"file:{tmp_path / 'blobs'}")
    blobs.put("datafile/bob/k1/archive.tar.gz", b"x" * 600)
    blobs.put("classifier/bob/k2/model.caffemodel", b"x" * 300)
    blobs.put("datafile/bobby/k3/archive.tar.gz", b"x" * 5000)
    assert stored_bytes(blobs, "bob") == 900
    assert stored_bytes(blobs, "bob", ignore=("datafile/bob/k1/archive.tar.gz",)) == 300
    assert room_left(blobs, "bob", 1000) == 100
    assert room_left(blobs, "bob", 0) is None
    check_stored_bytes(blobs, "bob", 1000, 100)
    with pytest.raises(QuotaExceeded, match=f"past 1000 bytes \\({FLAG}; 900 bytes used"):
        check_stored_bytes(blobs, "bob", 1000, 101)
    guard = QuotaGuard(100, 1000, "downloading")
    passed = []
    with pytest.raises(QuotaExceeded, match="downloading would take"):
        for chunk in guard.stream(iter([b"a" * 60, b"b" * 40, b"c"])):
            passed.append(chunk)
    assert sum(map(len, passed)) == 100
    with pytest.raises(QuotaExceeded):
        QuotaGuard(100, 1000, "x").check(101)


def test_dataset_split_past_the_quota_fails_naming_it(server: LiveServer) -> None:
    """The dataset job stores split archives (copies of the datafile's content): with the
    owner's quota nearly full it fails naming the quota instead of storing them."""
    alphabet = h.ALPHABET.read_bytes()
    user = h.new_user(server.url, "split")
    _fill(user, QUOTA - len(alphabet) - 10_000)
    df = user.ok("POST", "/datafiles", 201, files={"file": ("alphabet.tar.gz", alphabet)})
    assert user.wait(f"/datafiles/{df['id']}")["processing-state"] == "finished_successfully"
    ds = user.ok(
        "POST", "/datasets", 201,
        json={"training": {"datafile-id": df["id"], "split-percentage": 0.7},
              "testing": {"datafile-id": df["id"], "split-percentage": 0.3}},
    )  # fmt: skip
    doc = user.wait(f"/datasets/{ds['id']}", timeout=120)
    assert doc["processing-state"] == "failed", doc
    assert FLAG in doc["processing-log"] and "split archive" in doc["processing-log"], doc


def test_classify_uploads_past_the_quota_are_413(server: LiveServer) -> None:
    """Images uploaded to a queued classify job are stored with it: past the quota, 413
    naming the flag (the 1.7 MB classifier model leaves about 0.3 MB of the 2 MB)."""
    from tests.e2e.classify_support import GOLDEN_LENET, MNIST_DEPLOY, SEED_FIELDS

    user = h.new_user(server.url, "images")
    form = {**SEED_FIELDS, "specification": MNIST_DEPLOY.read_text()}
    model = (GOLDEN_LENET / "final.caffemodel").read_bytes()
    clf = user.ok("POST", "/classifiers", 201, data=form, files={"model": ("m", model)})
    parts = [("files", (f"{i}.png", bytes(100_000))) for i in range(5)]
    r = user.post(f"/classifiers/{clf['id']}/classify", files=parts)
    assert r.status_code == 413 and FLAG in r.json()["detail"], r.text
    r = user.post(f"/classifiers/{clf['id']}/classify", files=parts[:1])
    assert r.status_code == 201, r.text


def test_training_outputs_past_the_quota_fail_naming_it(server: LiveServer) -> None:
    """A training job's snapshots and final model are stored for its owner too: the seed's
    alphabet LeNet (a ~1.7 MB caffemodel) with the 2 MB quota holding the data already fails
    naming the quota at its first snapshot (model + solver state), never storing past it."""
    from tests.e2e import training_support as ts

    alphabet = h.ALPHABET.read_bytes()
    user = h.new_user(server.url, "trainer")
    df = user.ok("POST", "/datafiles", 201, files={"file": ("alphabet.tar.gz", alphabet)})
    ds = user.ok(
        "POST", "/datasets", 201,
        json={"training": {"datafile-id": df["id"], "split-percentage": 0.7},
              "testing": {"datafile-id": df["id"], "split-percentage": 0.3}},
    )  # fmt: skip
    assert user.wait(f"/datasets/{ds['id']}", timeout=120)["processing-state"] == (
        "finished_successfully"
    )
    solver = ts.edit_solver(ts.seed_text("alphabet/alpha_solver.prototxt"), max_iter=4, snapshot=2)
    net = ts.seed_text("alphabet/alpha_net.prototxt").replace("batch_size: 500", "batch_size: 8")
    sv = user.ok(
        "POST", "/solvers", 201,
        json={"dataset-id": ds["id"], "specification": solver, "specification-net": net},
    )  # fmt: skip
    job = ts.train(user, sv["id"])
    doc = user.wait(f"/training-jobs/{job['id']}", timeout=240)
    assert doc["processing-state"] == "failed", doc
    log = doc["processing-log"]
    assert FLAG in log and "snapshot at iteration 2" in log and str(QUOTA) in log, log
    owner = job["id"].split(":")[1]
    kept = [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file() and owner in str(p)]
    assert kept and sum(p.stat().st_size for p in kept) <= QUOTA


def test_concurrent_uploads_cannot_each_take_the_same_room(server: LiveServer) -> None:
    """Attack: many uploads at once, each fitting the room left but not all together (each
    request alone would see the same stored bytes). Six 800 kB datafile uploads sent at once
    to a 2 MB quota: exactly two are stored, the others answer 413 naming the quota, and the
    user's stored bytes stay within it."""
    user = h.new_user(server.url, "burst")
    size, tries = 800_000, 6
    start = threading.Barrier(tries)

    def upload(i: int) -> requests.Response:
        start.wait(30)
        return user.post("/datafiles", files={"file": (f"{i}.tar.gz", b"\0" * size)})

    with ThreadPoolExecutor(tries) as pool:
        answers = list(pool.map(upload, range(tries)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] * 2 + [413] * (tries - 2), [(r.status_code, r.text) for r in answers]
    assert all(FLAG in r.json()["detail"] for r in answers if r.status_code == 413)
    blobs = FileBlobStore(f"file:{server.data_dir / 'blobs'}")
    assert 2 * size <= stored_bytes(blobs, f"user:{user.username}") <= QUOTA
