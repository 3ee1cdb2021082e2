"""The training runner's evaluation (`elasticthought.engine.torch.evaluate`): Caffe's Accuracy rule
(ties count against, ignore_label skipped), every test record exactly once, and the golden
LeNet's accuracy and loss as real Caffe measured them on the whole 1000-digit test set."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from elasticthought.engine.torch.evaluate import evaluate, score_batch
from tests.api import helpers as h

LENET = h.SHARED / "golden" / "lenet" / "lenet_mnist_200"


def test_accuracy_counts_ties_against_like_caffe():
    scores = np.array([[1.0, 1.0, 0.0], [0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], dtype=np.float32)
    # Record 0: its true class ties with another -> wrong at top-1, right at top-2.
    assert score_batch(scores, np.array([0, 1, 0]), 1, None, False)[:2] == (2, 3)
    assert score_batch(scores, np.array([1, 1, 0]), 1, None, False)[:2] == (2, 3)
    assert score_batch(scores, np.array([0, 1, 0]), 2, None, False)[:2] == (3, 3)
    # ignore_label: the record is not counted at all.
    assert score_batch(scores, np.array([0, 1, 2]), 1, 2, False)[:2] == (1, 2)
    _, _, loss = score_batch(scores[1:2], np.array([1]), 1, None, True)
    expected = -np.log(np.exp(0.7) / np.exp([0.1, 0.7, 0.2]).sum())
    assert loss == pytest.approx(expected, rel=1e-6)


@pytest.fixture
def lenet(tmp_path, monkeypatch):
    """A writable copy of the golden LeNet case (its Data sources are relative)."""
    work = tmp_path / "lenet"
    work.mkdir()
    for name in ("lenet_train_test.prototxt", "final.caffemodel"):
        shutil.copyfile(LENET / name, work / name)
    for db in ("mnist_test_lmdb", "mnist_train_lmdb"):
        (work / db).mkdir()
        shutil.copyfile(LENET / db / "data.mdb", work / db / "data.mdb")
    monkeypatch.chdir(work)
    return work


def test_golden_lenet_evaluation_matches_caffe(lenet):
    golden = np.load(LENET / "case.npz")
    result = evaluate("lenet_train_test.prototxt", "final.caffemodel", 1000)
    assert result["forwards"] == 10 and result["count"] == 1000 and result["batch-size"] == 100
    assert result["scores-blob"] == "ip2" and result["label-blob"] == "label"
    assert result["input-shape"] == [1, 28, 28]
    # Real Caffe: 10 test batches of 100 = the whole set after 200 iterations.
    assert result["accuracy"] == pytest.approx(float(golden["test_accuracy"][2]), abs=0.0015)
    assert result["loss"] == pytest.approx(float(golden["test_loss"][2]), rel=1e-3)

    # 950 records: still 10 forwards; the last batch's 50 extra rows are not counted.
    part = evaluate("lenet_train_test.prototxt", "final.caffemodel", 950)
    assert part["forwards"] == 10 and part["count"] == 950
    assert 0 <= result["correct"] - part["correct"] <= 50
    # 1001 records: the 11th forward wraps to record 0; only that one record is counted.
    wrapped = evaluate("lenet_train_test.prototxt", "final.caffemodel", 1001)
    assert wrapped["forwards"] == 11 and wrapped["count"] == 1001
    assert wrapped["correct"] - result["correct"] in (0, 1)
