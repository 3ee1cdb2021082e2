"""Classifiers from training jobs, over HTTP against a live `elasticthought serve` (one worker)
on both store backends, with the seed's deploy prototxts and string fields:
- the alphabet flow (IMAGE_DATA): a (shortened) training job, images of the archive classified
  by URL and by upload into label names, and every test-split image classified: exactly the
  training job's `evaluation`;
- the MNIST flow (DATA, LMDB): every test-split record, as a PNG, classified into label numbers:
  exactly the training job's `evaluation` too."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.api import helpers as h
from tests.e2e import classify_support as cs
from tests.e2e import training_support as ts

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "couch"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    srv = ts.start_server(
        tmp_path_factory.mktemp(f"alpha-{request.param}"), ts.store_url(request, request.param)
    )
    yield srv
    srv.stop()


NEAR_TIE = 1e-5  # float32 rounding differs with the batch a record is in: far below this


def near_tie(result: dict) -> bool:
    """Top two classes closer than float rounding can be trusted to order the same way."""
    top = result["top-5"]
    return top[0]["probability"] - top[1]["probability"] < NEAR_TIE


def assert_matches(evaluation: dict, correct: int, ambiguous: int, count: int) -> None:
    """Classification reproduces the evaluation: the same correct count (exactly, unless some
    image's top two classes are a near-tie that batch rounding may order either way)."""
    assert count == evaluation["count"]
    assert abs(correct - evaluation["correct"]) <= ambiguous, (correct, evaluation, ambiguous)
    if ambiguous == 0:
        assert correct / count == evaluation["accuracy"]


def short_alphabet_solver(user: h.Client, files: h.FileServer) -> dict:
    """The seed's alphabet datafile, dataset and prototxts, trained briefly (20 iterations of
    64 images instead of 50 of 500) to bound the test's time; the TEST phase is unchanged."""
    _, ds = h.alphabet_dataset(user, files)
    net = ts.seed_text("alphabet/alpha_net.prototxt")
    assert net.count("batch_size: 500") == 2
    net = net.replace("batch_size: 500", "batch_size: 64", 1)  # the TRAIN layer comes first
    solver = ts.edit_solver(ts.seed_text("alphabet/alpha_solver.prototxt"), max_iter=20)
    return user.ok(
        "POST",
        "/solvers",
        201,
        json={"dataset-id": ds["id"], "specification": solver, "specification-net": net},
    )


def test_alphabet_classification_matches_evaluation(server, train_files, classify_files):
    user = h.new_user(server.url, "abc")
    solver = short_alphabet_solver(user, train_files)
    job = ts.finished(user, ts.train(user, solver["id"])["id"])
    labels = job["labels"]
    evaluation = job["evaluation"]

    clf = user.ok(
        "POST", "/classifiers", 201,
        json={"specification-url": classify_files.url + "/alpha_classifier.prototxt",
              "training-job-id": job["id"], **cs.SEED_FIELDS},
    )  # fmt: skip
    assert clf["label-kind"] == "names" and clf["labels"] == labels
    assert clf["transform"]["scale"] == pytest.approx(0.00390625)
    assert clf["training-job-id"] == job["id"] and clf["softmax-applied"] is False

    testing = cs.seed_test_split(cs.alphabet_members())
    assert len(testing) == evaluation["count"]
    root = classify_files.root / "alphabet"
    uploads = [(name.replace("/", "__"), (root / name).read_bytes()) for name in testing]
    result = cs.finished_job(cs.classify(user, clf["id"], uploads=uploads))
    answers = result["results"]
    assert len(answers) == len(testing) and result["failed-images"] == 0
    correct = ambiguous = 0
    for name in testing:
        got = answers[name.replace("/", "__")]
        assert got["label"] in labels and got["label"] == labels[got["label-index"]]
        assert len(got["top-5"]) == 5 and 0 < got["probability"] <= 1
        correct += got["label"] == name.split("/")[0]
        ambiguous += near_tie(got)
    assert_matches(evaluation, correct, ambiguous, len(testing))

    # By URL: the same answers as the uploads of the same files.
    picks = testing[:2]
    urls = [f"{classify_files.url}/alphabet/{name}" for name in picks]
    by_url = cs.finished_job(cs.classify(user, clf["id"], urls=urls))["results"]
    for name, url in zip(picks, urls, strict=True):
        assert by_url[url]["label"] == answers[name.replace("/", "__")]["label"]
        upload = answers[name.replace("/", "__")]["top-5"]
        assert [t["label"] for t in by_url[url]["top-5"]] == [t["label"] for t in upload]
        assert [t["probability"] for t in by_url[url]["top-5"]] == pytest.approx(
            [t["probability"] for t in upload], abs=1e-5
        )


def mnist_test_split(tmp_path) -> list[tuple[np.ndarray, int]]:
    """(pixels, label) of the golden MNIST training LMDB's test split, by the seed's rule
    (within each label, in key order)."""
    import lmdb

    from elasticthought.engine.proto import caffe_pb2

    folder = tmp_path / "mnist_lmdb"
    folder.mkdir()
    shutil.copyfile(ts.MNIST_TRAIN_LMDB / "data.mdb", folder / "data.mdb")
    records = []
    with lmdb.open(str(folder), readonly=True, lock=False) as env, env.begin() as txn:
        for _, value in txn.cursor():
            datum = caffe_pb2.Datum.FromString(value)
            shape = (datum.height, datum.width)
            records.append((np.frombuffer(datum.data, np.uint8).reshape(shape), datum.label))
    names = [f"{label}/{i}" for i, (_, label) in enumerate(records)]
    testing = {int(n.split("/")[1]) for n in cs.seed_test_split(names)}
    return [r for i, r in enumerate(records) if i in testing]


def test_mnist_data_classification_matches_evaluation(
    server, train_files, classify_files, tmp_path
):
    user = h.new_user(server.url, "mn")
    solver = ts.mnist_solver(user, train_files, "LMDB", max_iter=10, test_iter=1)
    job = ts.finished(user, ts.train(user, solver["id"])["id"])
    evaluation = job["evaluation"]
    clf = user.ok(
        "POST", "/classifiers", 201,
        json={"specification-url": classify_files.url + "/mnist_classifier.prototxt",
              "training-job-id": job["id"], **cs.SEED_FIELDS},
    )  # fmt: skip
    assert clf["label-kind"] == "numbers" and clf["layers_type"] == "DATA"

    testing = mnist_test_split(tmp_path)
    assert len(testing) == evaluation["count"]
    correct = ambiguous = 0
    for start in range(0, len(testing), 600):
        chunk = testing[start : start + 600]
        uploads = [(f"{start + i}.png", cs.png(pixels)) for i, (pixels, _) in enumerate(chunk)]
        results = cs.finished_job(cs.classify(user, clf["id"], uploads=uploads))["results"]
        for i, (_, label) in enumerate(chunk):
            got = results[f"{start + i}.png"]
            assert isinstance(got["label"], int) and got["label"] == got["label-index"]
            correct += got["label"] == label
            ambiguous += near_tie(got)
    assert_matches(evaluation, correct, ambiguous, len(testing))
