"""`elasticthought time`: per-layer forward/backward lines and totals, like `caffe time`."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.support.paths import GOLDEN

LENET = str(GOLDEN / "lenet" / "lenet_mnist_200" / "deploy.prototxt")


def test_time_prints_per_layer_and_totals():
    proc = subprocess.run(
        [sys.executable, "-m", "elasticthought.cli", "time", "--model", LENET, "--iterations", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "*** Benchmark begins ***" in err and "*** Benchmark ends ***" in err
    assert "Iteration: 2 forward-backward time:" in err
    for layer in ("conv1", "pool1", "conv2", "ip1", "relu1", "ip2", "prob"):
        assert re.search(rf"\s{layer}\tforward: [0-9.e+-]+ ms\.", err), layer
        assert re.search(rf"\s{layer}\tbackward: [0-9.e+-]+ ms\.", err), layer
    for total in (
        "Average Forward pass",
        "Average Backward pass",
        "Average Forward-Backward",
        "Total Time",
    ):
        assert re.search(rf"{total}: [0-9.e+-]+ ms\.", err), total


def test_time_bad_model_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer { name: "x" type: "Warp" }\n')
    proc = subprocess.run(
        [sys.executable, "-m", "elasticthought.cli", "time", "--model", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "unsupported layer type 'Warp'" in proc.stderr
    assert "Traceback" not in proc.stderr
