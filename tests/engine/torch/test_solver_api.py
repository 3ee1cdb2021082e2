"""The solver's pycaffe-like surface: test nets, callbacks, cancel, snapshots, seeds, errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from elasticthought.engine.caffemodel import read_solverstate
from elasticthought.engine.datum import array_to_datum
from elasticthought.engine.db import open_db
from elasticthought.engine.prototxt import parse_solver
from elasticthought.engine.torch.data import set_input_arrays
from elasticthought.engine.torch.glog import attach, engine_logger
from elasticthought.engine.torch.solver import Solver, SolverError, get_solver
from elasticthought.engine.torch.solvers import UnknownSolverType

NET = """
name: "small"
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.01 }
  data_param { source: "train_db" batch_size: 8 backend: LMDB } }
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.01 }
  data_param { source: "test_db" batch_size: 5 backend: LMDB } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
  inner_product_param { num_output: 6 weight_filler { type: "xavier" } } }
layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "acc" type: "Accuracy" bottom: "ip2" bottom: "label" top: "acc"
  include { phase: TEST } }
layer { name: "acc_s" type: "Accuracy" bottom: "ip2" bottom: "label" top: "acc_s"
  include { phase: TEST stage: "extra" } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

SOLVER = """
net: "net.prototxt"
base_lr: 0.05 momentum: 0.9 lr_policy: "step" stepsize: 3 gamma: 0.5
max_iter: 7 display: 2 average_loss: 2
test_iter: 2 test_iter: 1 test_interval: 3
test_state { stage: "extra" } test_state { }
snapshot: 4 snapshot_prefix: "snaps/small"
random_seed: 7 solver_mode: CPU
"""


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    rng = np.random.default_rng(0)
    for name, n in (("train_db", 24), ("test_db", 10)):
        with open_db(str(tmp_path / name), "lmdb", "w") as db:
            for i in range(n):
                label = i % 3
                img = (rng.integers(0, 60, (1, 2, 2)) + 60 * label).astype(np.uint8)
                db.put(f"{i:04d}", array_to_datum(img, label).SerializeToString())
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    (tmp_path / "snaps").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_solve_events_logs_snapshots_and_shared_test_nets(folder):
    events: list[dict] = []
    solver = get_solver("solver.prototxt", callback=events.append)
    try:
        assert len(solver.test_nets) == 2
        assert "acc_s" in solver.test_nets[0].outputs
        assert "acc_s" not in solver.test_nets[1].outputs
        stream = io.StringIO()
        handler = attach(stream)
        try:
            solver.solve()
        finally:
            engine_logger().removeHandler(handler)
        assert solver.iter == 7
        # test nets share the train net's weights
        for net in solver.test_nets:
            np.testing.assert_array_equal(
                net.params["ip1"][0].data, solver.net.params["ip1"][0].data
            )
    finally:
        solver.close()
    kinds = [(e["event"], e["iteration"]) for e in events]
    tests = [(e["iteration"], e["net"]) for e in events if e["event"] == "test"]
    assert tests == [(0, 0), (0, 1), (3, 0), (3, 1), (6, 0), (6, 1)]
    assert [i for k, i in kinds if k == "train"] == [0, 2, 4, 6]
    assert [e["caffemodel"] for e in events if e["event"] == "snapshot"] == [
        "snaps/small_iter_4.caffemodel",
        "snaps/small_iter_7.caffemodel",
    ]
    assert kinds[-1] == ("done", 7) and events[-1]["stopped_early"] is False
    train = [e for e in events if e["event"] == "train"]
    assert train[-1]["lr"] == pytest.approx(0.05 * 0.5**2)
    assert set(train[0]["outputs"]) == {"loss"}
    assert set(events[0]["outputs"]) == {"acc", "acc_s", "loss"}
    assert set(events[1]["outputs"]) == {"acc", "loss"}
    assert 0 <= events[1]["outputs"]["acc"] <= 1
    state = read_solverstate(folder / "snaps/small_iter_7.solverstate")
    assert (state.iter, state.current_step, state.learned_net) == (
        7,
        2,
        "snaps/small_iter_7.caffemodel",
    )
    text = stream.getvalue()
    for line in (
        "Solving small",
        "Learning Rate Policy: step",
        "Iteration 0, Testing net (#1)",
        "Iteration 6, lr = 0.0125",
        "Snapshotting to binary proto file snaps/small_iter_4.caffemodel",
        "Optimization Done.",
    ):
        assert line in text
    assert "    Test net output #1: loss = " in text and "(* 1 = " in text
    # average_loss 2: the displayed loss at iteration 2 is the mean of iterations 1 and 2
    assert train[1]["loss"] != train[1]["outputs"]["loss"]


def test_cancel_stops_between_iterations_and_snapshots(folder):
    events: list[dict] = []
    solver = get_solver(
        "solver.prototxt", callback=events.append, cancel_check=lambda: solver.iter >= 2
    )
    try:
        solver.solve()
    finally:
        solver.close()
    assert solver.iter == 2
    assert events[-1] == {"event": "done", "iteration": 2, "stopped_early": True}
    assert (folder / "snaps/small_iter_2.caffemodel").exists()  # snapshot_after_train


def test_random_seed_determinism_and_restore(folder):
    def run(seed: int) -> np.ndarray:
        param = parse_solver(SOLVER.replace("random_seed: 7", f"random_seed: {seed}"))
        param.snapshot = 0
        solver = Solver(param)
        try:
            solver.step(5)
            return solver.net.params["ip2"][0].data.copy()
        finally:
            solver.close()

    a, b, c = run(7), run(7), run(8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # a snapshot restores iter, the step policy's current_step and the weights
    solver = get_solver("solver.prototxt")
    try:
        solver.step(4)
        want = solver.net.params["ip1"][0].data.copy()
    finally:
        solver.close()
    resumed = get_solver("solver.prototxt")
    try:
        resumed.restore("snaps/small_iter_4.solverstate")
        assert (resumed.iter, resumed.current_step) == (4, 1)
        np.testing.assert_array_equal(resumed.net.params["ip1"][0].data, want)
    finally:
        resumed.close()


def test_weights_and_v1_solver_type(folder):
    solver = get_solver("solver.prototxt")
    try:
        solver.net.save("w.caffemodel")
        first = solver.net.params["ip1"][0].data.copy()
    finally:
        solver.close()
    text = (
        SOLVER.replace("random_seed: 7", "random_seed: 3")
        + '\nsolver_type: ADAGRAD\nweights: "w.caffemodel"\n'
    )
    param = parse_solver(text.replace("momentum: 0.9", ""))
    assert param.type == "AdaGrad"
    solver = Solver(param)
    try:
        np.testing.assert_array_equal(solver.net.params["ip1"][0].data, first)
        np.testing.assert_array_equal(solver.test_nets[0].params["ip1"][0].data, first)
        assert len(solver.rule.history) == 4
    finally:
        solver.close()


@pytest.mark.parametrize(
    "extra, error, match",
    [
        ('type: "LBFGS"', UnknownSolverType, "LBFGS"),
        ('regularization_type: "L3"', SolverError, "L3"),
        ("test_iter: 4", SolverError, "test_state"),
        ('snapshot_prefix: "no/such/dir/x"', SolverError, "snapshot prefix"),
        ("solver_mode: GPU", SolverError, "CUDA"),
    ],
)
def test_bad_solvers(folder, extra, error, match):
    if not extra.startswith("solver_mode") or not torch.cuda.is_available():
        with pytest.raises(error, match=match):
            text = SOLVER.replace("solver_mode: CPU", "").replace(
                'snapshot_prefix: "snaps/small"', ""
            )
            if not extra.startswith("snapshot_prefix"):
                text += '\nsnapshot_prefix: "snaps/small"\n'
            Solver(parse_solver(text + "\n" + extra))


def test_snapshot_prefix_defaults_to_solver_name(folder):
    (folder / "s2.prototxt").write_text(SOLVER.replace('snapshot_prefix: "snaps/small"', ""))
    solver = get_solver("s2.prototxt")
    try:
        assert solver.param.snapshot_prefix == "s2"
        assert solver.snapshot()[0] == "s2_iter_0.caffemodel"
    finally:
        solver.close()
    (folder / "s3.prototxt").write_text(SOLVER.replace('"snaps/small"', '"snaps"'))
    solver = get_solver("s3.prototxt")
    try:
        assert solver.param.snapshot_prefix == "snaps/s3"
    finally:
        solver.close()


def test_memory_data_solver(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = """
layer { name: "m" type: "MemoryData" top: "data" top: "label"
  memory_data_param { batch_size: 4 channels: 2 height: 1 width: 1 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""
    (tmp_path / "net.prototxt").write_text(net)
    (tmp_path / "s.prototxt").write_text(
        'net: "net.prototxt" base_lr: 0.5 lr_policy: "fixed" max_iter: 30 snapshot_prefix: "m"'
    )
    solver = get_solver("s.prototxt")
    data = np.array([[[[1.0]], [[0.0]]], [[[0.0]], [[1.0]]]] * 4, dtype=np.float32)
    labels = np.array([0, 1] * 4, dtype=np.float32)
    set_input_arrays(solver.net, data, labels)
    calls: list[str] = []
    solver.add_callback(lambda: calls.append("start"), lambda: calls.append("ready"))
    solver.step(1)
    assert calls == ["start", "ready"]
    first = solver.smoothed_loss
    assert first == pytest.approx(np.log(2), rel=1e-5)  # zero weights, real data
    solver.step(29)
    assert solver.smoothed_loss < first / 4
