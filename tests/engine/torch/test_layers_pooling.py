"""Pooling's general path (explicit padding, Caffe's divisor) against the golden cases, and the
output sizes where Caffe and torch's own ceil mode disagree."""

from __future__ import annotations

import numpy as np
import pytest

from elasticthought.engine.prototxt import parse_net
from elasticthought.engine.torch.layers import pooling
from elasticthought.engine.torch.net import Net

POOL_CASES = [
    "pool_ave_k3s2_6x6_pad0", "pool_ave_k3s2_6x6_pad1", "pool_ave_k3s2_7x7_pad0",
    "pool_ave_k3s2_7x7_pad1", "pool_global_ave", "pool_global_max", "pool_max_floor_6x6",
    "pool_max_k3s2_6x6_pad0", "pool_max_k3s2_6x6_pad1", "pool_max_k3s2_7x7_pad0",
    "pool_max_k3s2_7x7_pad1", "pool_max_mask",
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_general_path_matches_caffe(case, run_golden_case, monkeypatch):
    monkeypatch.setattr(pooling, "_torch_pooled_size", lambda *a: -1)  # never the fast path
    checked, failures, _ = run_golden_case(case)
    assert checked and not failures, failures


@pytest.mark.parametrize(
    "size,k,s,p,mode,want",
    [(6, 3, 2, 0, 0, 3), (6, 3, 2, 1, 0, 4), (7, 3, 2, 1, 0, 4), (6, 3, 2, 0, 1, 2),
     (6, 1, 3, 0, 0, 3), (5, 2, 2, 1, 0, 3), (4, 3, 3, 2, 0, 2)],
)
def test_caffe_pooled_size(size, k, s, p, mode, want):
    assert pooling.caffe_pooled_size(size, k, s, p, mode) == want


def test_window_in_the_overhang_only_where_torch_would_drop_it():
    """k 1 s 3 on 6 pixels: Caffe keeps a third output starting at the border (empty window:
    -FLT_MAX, mask -1); torch's ceil mode would drop it."""
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }
    layer { name: "p" type: "Pooling" bottom: "x" top: "p" top: "m"
            pooling_param { pool: MAX kernel_size: 1 stride: 3 } }
    """
    net = Net(parse_net(text), "TEST")
    x = np.arange(36, dtype=np.float32).reshape(1, 1, 6, 6)
    out = net.forward(x=x)
    assert out["p"].shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(out["p"][0, 0, :2, :2], [[0, 3], [18, 21]])
    assert out["p"][0, 0, 2, 2] == -np.finfo(np.float32).max
    np.testing.assert_array_equal(out["m"][0, 0, :2, :2], [[0, 3], [18, 21]])
    assert out["m"][0, 0, 2, 2] == -1
