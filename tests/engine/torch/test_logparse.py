"""The Caffe log parser on real Caffe's log and on lines from our glog formatter."""

from __future__ import annotations

import io
import logging
import math
import re

import numpy as np

from elasticthought.engine.logparse import parse_log, to_csv
from elasticthought.engine.torch.glog import GlogFormatter, attach, engine_logger
from tests.support.paths import SHARED

LENET = SHARED / "golden" / "lenet" / "lenet_mnist_200"


def test_parses_real_caffe_log():
    tables = parse_log(LENET / "caffe_train.log")
    with np.load(LENET / "case.npz") as npz:
        loss, lr = npz["train_loss"], npz["lr"]
        accuracy, test_loss = npz["test_accuracy"], npz["test_loss"]
    assert [row["NumIters"] for row in tables.train] == list(range(200))
    np.testing.assert_allclose([r["loss"] for r in tables.train], loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r["LearningRate"] for r in tables.train], lr, rtol=1e-6)
    seconds = [r["Seconds"] for r in tables.train]
    assert seconds == sorted(seconds) and 0 <= seconds[0] < seconds[-1] < 60
    assert [(r["NumIters"], r["TestNet"]) for r in tables.test] == [(0, 0), (100, 0), (200, 0)]
    np.testing.assert_allclose([r["accuracy"] for r in tables.test], accuracy, atol=1e-6)
    np.testing.assert_allclose([r["loss"] for r in tables.test], test_loss, rtol=1e-5)
    csv = to_csv(tables.test).splitlines()
    assert csv[0] == "NumIters,Seconds,LearningRate,TestNet,accuracy,loss"
    assert len(csv) == 4


def test_old_glog_dates_and_several_test_nets():
    text = "\n".join(
        [
            "I1231 23:59:59.000000 1 solver.cpp:289] Solving X",
            "I1231 23:59:59.500000 1 solver.cpp:347] Iteration 0, Testing net (#0)",
            "I1231 23:59:59.600000 1 solver.cpp:414]     Test net output #0: acc = 0.5",
            "I1231 23:59:59.700000 1 solver.cpp:347] Iteration 0, Testing net (#1)",
            "I1231 23:59:59.800000 1 solver.cpp:414]     Test net output #0: acc = 0.25",
            "I0101 00:00:01.000000 1 solver.cpp:239] Iteration 0 (0 iter/s, 1s/1 iters), loss = 2",
            "I0101 00:00:01.000000 1 solver.cpp:258]     Train net output #0: loss = 2 "
            "(* 1 = 2 loss)",
            "I0101 00:00:01.000000 1 solver.cpp:258]     Train net output #1: top = nan",
            "I0101 00:00:01.000000 1 sgd_solver.cpp:112] Iteration 0, lr = 1e-05",
            "",
        ]
    )
    tables = parse_log(text, year=2025)
    assert [(r["TestNet"], r["acc"]) for r in tables.test] == [(0, 0.5), (1, 0.25)]
    (row,) = tables.train
    assert row["Seconds"] == 2.0 and row["LearningRate"] == 1e-05 and row["loss"] == 2
    assert math.isnan(row["top"])
    assert math.isnan(tables.test[0]["LearningRate"]) is False  # filled from iteration 0


def test_glog_formatter_lines_parse():
    stream = io.StringIO()
    handler = attach(stream)
    log = engine_logger()
    try:
        log.info("Solving net")
        log.info("Iteration %d (%s iter/s, %ss/%d iters), loss = %s", 5, "10", "0.1", 1, "0.5")
        log.info("    Train net output #0: loss = 0.5 (* 1 = 0.5 loss)")
        log.info("Iteration 5, lr = 0.01")
        log.warning("careful")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert re.match(
        r"^I\d{8} \d\d:\d\d:\d\d\.\d{6} \d+ test_logparse\.py:\d+\] Solving net$", lines[0]
    )
    assert lines[-1].startswith("W")
    tables = parse_log(stream.getvalue() + "\n")
    assert tables.train == [
        {"NumIters": 5, "Seconds": tables.train[0]["Seconds"], "LearningRate": 0.01, "loss": 0.5}
    ]
    record = logging.LogRecord("x", logging.ERROR, "f.py", 3, "a\nb", None, None)
    assert GlogFormatter().format(record).endswith(" f.py:3] a\nb")
