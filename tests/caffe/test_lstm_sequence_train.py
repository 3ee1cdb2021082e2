"""An LSTM sequence net (LRCN-style: HDF5Data with x (T, N, D), cont (T, N) and per-step labels;
LSTM -> InnerProduct (axis 2) -> SoftmaxWithLoss (axis 2)) trains through `elasticthought train`
with real Caffe's loss at every iteration, and the caffemodel it writes loads in real Caffe and
scores the same there. The task needs memory: the label at step t is the argmax of x at step
t - 1 (and 0 at a sequence start), with sequences of 8 steps split over batches of 4 steps, so
the state carried from one batch to the next matters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from elasticthought.engine.caffe import train
from elasticthought.engine.logparse import parse_log
from tests.caffe.pycaffe_script import run_pycaffe

pytestmark = [pytest.mark.caffe, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ITERATIONS = 150
T, N, D, K, SEQ = 4, 6, 3, 3, 8

NET = f"""
name: "lstm_sequence"
layer {{ name: "data" type: "HDF5Data" top: "x" top: "cont" top: "label"
        hdf5_data_param {{ source: "train.txt" batch_size: {T} }} }}
layer {{ name: "lstm" type: "LSTM" bottom: "x" bottom: "cont" top: "h"
        recurrent_param {{ num_output: 8 weight_filler {{ type: "uniform" min: -0.3 max: 0.3 }}
                           bias_filler {{ type: "constant" value: 0 }} }} }}
layer {{ name: "score" type: "InnerProduct" bottom: "h" top: "score"
        inner_product_param {{ num_output: {K} axis: 2 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        softmax_param {{ axis: 2 }} }}
"""
SOLVER = f"""
net: "net.prototxt"
base_lr: 0.3
momentum: 0.9
lr_policy: "fixed"
clip_gradients: 5
max_iter: {ITERATIONS}
display: 1
snapshot: 0
snapshot_prefix: "lstm"
solver_mode: CPU
"""


def _data(folder: Path, rows: int, seed: int) -> None:
    """`rows` timesteps of N streams, sequences of SEQ steps (rows is a multiple of SEQ)."""
    rng = np.random.RandomState(seed)
    x = rng.normal(size=(rows, N, D)).astype(np.float32)
    cont = np.ones((rows, N), np.float32)
    cont[::SEQ] = 0
    label = np.zeros((rows, N), np.float32)
    label[1:] = x[:-1].argmax(-1)
    label[::SEQ] = 0
    with h5py.File(folder / "seq.h5", "w") as f:
        f.create_dataset("x", data=x)
        f.create_dataset("cont", data=cont)
        f.create_dataset("label", data=label)
    (folder / "train.txt").write_text("seq.h5\n")


@pytest.fixture(scope="module")
def lstm_job(tmp_path_factory) -> Path:
    import torch

    from elasticthought.engine.torch.net import Net

    work = tmp_path_factory.mktemp("lstm")
    _data(work, SEQ * 10, 4)
    (work / "net.prototxt").write_text(NET)
    (work / "solver.prototxt").write_text(SOLVER)
    torch.manual_seed(18)
    old = Path.cwd()
    os.chdir(work)
    try:
        net = Net("net.prototxt", "TRAIN")
        net.save(work / "init.caffemodel")
        net.close()
    finally:
        os.chdir(old)
    return work


def test_lstm_sequence_net_trains_like_caffe(
    lstm_job: Path, caffe_runtime, tmp_path: Path, monkeypatch
):
    from elasticthought.engine.torch.net import Net

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "elasticthought", "train", "--solver", "solver.prototxt",
         "--weights", "init.caffemodel"],
        cwd=lstm_job, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # real Caffe's runs below write the same snapshot name: keep ours aside
    (lstm_job / f"lstm_iter_{ITERATIONS}.caffemodel").rename(lstm_job / "torch_final.caffemodel")
    rows = parse_log(done.stderr).train
    assert [r["NumIters"] for r in rows] == list(range(ITERATIONS))
    ours = np.array([r["loss"] for r in rows])

    def caffe_losses(logs: Path) -> np.ndarray:
        logs.mkdir()
        events: list[dict] = []
        result = train("solver.prototxt", lstm_job, weights="init.caffemodel",
                       on_iteration=events.append, python=caffe_runtime["python"],
                       prefix=caffe_runtime["prefix"], log_path=logs / "caffe.log")  # fmt: skip
        assert result.state == "finished", result
        return np.array([e["loss"] for e in events])

    theirs = caffe_losses(tmp_path / "caffe")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")
    variant = caffe_losses(tmp_path / "caffe_prescott")
    assert ours.shape == theirs.shape == variant.shape == (ITERATIONS,)
    noise = np.maximum.accumulate(np.abs(theirs - variant))
    atol = np.maximum(10 * noise, 1e-5 * np.abs(theirs))
    diff = np.abs(ours - theirs)
    assert np.all(diff <= atol), json.dumps(
        [(int(i), float(ours[i]), float(theirs[i]), float(atol[i]))
         for i in np.flatnonzero(diff > atol)]
    )  # fmt: skip
    assert theirs[-10:].mean() < 0.8 * theirs[:10].mean()  # it learns the lagged task

    # the torch engine's final caffemodel in real Caffe and real Caffe's in the torch engine:
    # the same losses on the first batches (the LSTM state carries over between them)
    script = (
        "net = caffe.Net('net.prototxt', caffe.TEST, weights=sys.argv[1])\n"
        "print(json.dumps([float(net.forward()['loss']) for _ in range(3)]))\n"
    )
    for model in ("torch_final.caffemodel", f"lstm_iter_{ITERATIONS}.caffemodel"):
        caffe_loss = json.loads(run_pycaffe(caffe_runtime, script, lstm_job, model))
        old = Path.cwd()
        os.chdir(lstm_job)
        try:
            net = Net("net.prototxt", "TEST", weights=model)
            torch_loss = [float(net.forward()["loss"]) for _ in range(3)]
            net.close()
        finally:
            os.chdir(old)
        np.testing.assert_allclose(torch_loss, caffe_loss, rtol=1e-5, atol=1e-6)
