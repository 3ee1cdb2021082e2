"""golden/lenet: `elasticthought train` reproduces real Caffe's 200-iteration LeNet run.

One CLI run (in-process) from init.caffemodel on the golden LMDBs; its glog file, read by the log
parser, must match Caffe's per-iteration training loss within `train_loss_atol_per_iteration`,
the test outputs at 0/100/200 within the case tolerances, and caffe_train.log parsed by the
same parser must give tables of the same shape.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from elasticthought.cli import main
from elasticthought.engine.caffemodel import caffemodel_params, read_caffemodel
from elasticthought.engine.logparse import parse_log
from tests.support.paths import SHARED, writable_copy

LENET = SHARED / "golden" / "lenet" / "lenet_mnist_200"
LOG_DIGITS = 1e-5  # the logs print 6 significant digits


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = writable_copy(LENET, tmp_path_factory.mktemp("lenet") / "run")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    cwd = Path.cwd()
    try:
        import os

        os.chdir(folder)
        code = main(
            [
                "train",
                "--solver",
                "lenet_solver.prototxt",
                "--weights",
                "init.caffemodel",
                "--log-file",
                "ours.log",
            ]
        )
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    assert code == 0, (folder / "ours.log").read_text()[-3000:]
    return folder


@pytest.mark.slow
def test_lenet_training_matches_caffe(lenet_run):
    meta = json.loads((LENET / "meta.json").read_text())
    with np.load(LENET / "case.npz") as npz:
        golden = {k: npz[k] for k in npz.files}
    ours = parse_log(lenet_run / "ours.log")
    caffe = parse_log(LENET / "caffe_train.log")

    # Same table shapes (rows, columns, iterations) for our log and Caffe's.
    for mine, theirs in ((ours.train, caffe.train), (ours.test, caffe.test)):
        assert len(mine) == len(theirs)
        assert [list(r) for r in mine] == [list(r) for r in theirs]
        assert [r["NumIters"] for r in mine] == [r["NumIters"] for r in theirs]
        np.testing.assert_allclose(
            [r["LearningRate"] for r in mine], [r["LearningRate"] for r in theirs], rtol=1e-6
        )

    # Training loss at every iteration.
    loss = np.array([r["loss"] for r in ours.train])
    atol = np.asarray(meta["train_loss_atol_per_iteration"])
    want = golden["train_loss"]
    bad = np.abs(loss - want) > atol + (1e-5 + LOG_DIGITS) * np.abs(want)
    assert not bad.any(), [(int(i), loss[i], want[i], atol[i]) for i in np.flatnonzero(bad)]
    np.testing.assert_allclose(
        loss, [r["loss"] for r in caffe.train], rtol=2 * LOG_DIGITS, atol=atol.max()
    )

    # Test outputs at iterations 0, 100 and 200.
    assert [r["NumIters"] for r in ours.test] == golden["test_iters"].astype(int).tolist()
    for key, column in (("test_accuracy", "accuracy"), ("test_loss", "loss")):
        tol = meta["arrays"][key]
        np.testing.assert_allclose(
            [r[column] for r in ours.test],
            golden[key],
            rtol=tol["rtol"] + LOG_DIGITS,
            atol=tol["atol"],
        )

    # The final forward ("Iteration 200, loss") and the snapshots.
    text = (lenet_run / "ours.log").read_text()
    final = float(text.split("Iteration 200, loss = ")[1].split()[0])
    tol = meta["arrays"]["train_loss_iter200"]
    assert abs(final - golden["train_loss_iter200"]) <= tol["atol"] + LOG_DIGITS
    assert (lenet_run / "lenet_iter_100.solverstate").exists()
    weights = caffemodel_params(read_caffemodel(lenet_run / "lenet_iter_200.caffemodel"))
    final_caffe = caffemodel_params(read_caffemodel(LENET / "final.caffemodel"))
    for key, tol in meta["caffemodel_blas_variation"]["final.caffemodel"].items():
        layer, i = key.rsplit(".", 1)
        np.testing.assert_allclose(
            weights[layer][int(i)], final_caffe[layer][int(i)], atol=tol["atol"], err_msg=key
        )


@pytest.mark.slow
def test_lenet_resume_and_score_from_cli(lenet_run, monkeypatch, capsys):
    """Resuming from the iteration-100 snapshot continues at 100 (a shortened copy of the
    solver), and `elasticthought test` scores the final weights as the run's last test did."""
    solver = (lenet_run / "lenet_solver.prototxt").read_text()
    solver = (
        solver.replace("max_iter: 200", "max_iter: 110")
        .replace("test_interval: 100", "test_interval: 10")
        .replace("test_iter: 10", "test_iter: 1")
    )
    (lenet_run / "short_solver.prototxt").write_text(solver)
    monkeypatch.chdir(lenet_run)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert (
            main(
                [
                    "train",
                    "--solver",
                    "short_solver.prototxt",
                    "--snapshot",
                    "lenet_iter_100.solverstate",
                    "--log-file",
                    "resumed.log",
                ]
            )
            == 0
        )
        capsys.readouterr()
        assert (
            main(
                [
                    "test",
                    "--model",
                    "lenet_train_test.prototxt",
                    "--weights",
                    "lenet_iter_200.caffemodel",
                    "--iterations",
                    "10",
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    resumed = parse_log(lenet_run / "resumed.log")
    assert [r["NumIters"] for r in resumed.train] == list(range(100, 110))
    assert [r["NumIters"] for r in resumed.test] == [100, 110]
    assert resumed.train[0]["LearningRate"] == pytest.approx(0.00992565, rel=1e-6)
    assert (lenet_run / "lenet_iter_110.solverstate").exists()
    err = capsys.readouterr().err
    accuracy = float(err.split("] accuracy = ")[1].split()[0])
    final = parse_log(lenet_run / "ours.log").test[-1]["accuracy"]
    assert accuracy == pytest.approx(final, abs=1e-6)
