"""Learning-rate policies against the rates real Caffe used in the golden solver cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.prototxt import parse_solver, read_solver
from elasticthought.engine.torch.lr_policy import LrPolicyError, check_policy, learning_rate
from tests.support.paths import SHARED

SOLVERS = SHARED / "golden" / "solvers"
CASES = sorted(p.name for p in SOLVERS.iterdir() if (p / "meta.json").exists())
LENET = SHARED / "golden" / "lenet" / "lenet_mnist_200"


@pytest.mark.parametrize("name", CASES)
def test_rates_match_caffe(name):
    param = read_solver(SOLVERS / name / "solver.prototxt")
    with np.load(SOLVERS / name / "case.npz") as npz:
        lr, logged = npz["lr"], npz["lr_logged"]
    step = 0
    for it in range(len(lr)):
        rate, step = learning_rate(param, it, step)
        assert np.float32(rate) == pytest.approx(float(lr[it]), rel=1e-6), (name, it)
        assert f"{rate:.6g}" == f"{float(logged[it]):.6g}", (name, it)


def test_lenet_inv_rates():
    param = read_solver(LENET / "lenet_solver.prototxt")
    with np.load(LENET / "case.npz") as npz:
        lr = npz["lr"]
    got = [f"{learning_rate(param, it)[0]:.6g}" for it in range(200)]
    assert got == [f"{float(v):.6g}" for v in lr]  # the 6 digits Caffe logged, exactly


def test_multistep_state_advances_once_per_call_and_resumes():
    param = parse_solver('base_lr: 1 lr_policy: "multistep" gamma: 0.1 stepvalue: 2 stepvalue: 3')
    rates, step = [], 0
    for it in range(5):
        rate, step = learning_rate(param, it, step)
        rates.append(round(rate, 6))
    assert rates == [1.0, 1.0, 0.1, 0.01, 0.01] and step == 2
    # Restored at iter 4 with current_step 2 (as a .solverstate holds it).
    assert round(learning_rate(param, 4, 2)[0], 6) == 0.01


def test_bad_policies():
    for text, match in [
        ('lr_policy: "cosine"', "unknown lr_policy"),
        ('lr_policy: "step"', "stepsize"),
        ('lr_policy: "poly"', "max_iter"),
    ]:
        with pytest.raises(LrPolicyError, match=match):
            check_policy(parse_solver(text))
    assert json.dumps(caffe_pb2.SolverParameter().lr_policy) == '""'
