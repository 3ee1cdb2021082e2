"""Pooling's general path (explicit padding, Caffe's divisor) against the golden cases, and the
output sizes where Caffe and torch's own ceil mode disagree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from elasticthought.engine.prototxt import parse_net
from elasticthought.engine.torch.layers import pooling
from elasticthought.engine.torch.net import Net

POOL_CASES = [
    "pool_ave_k3s2_6x6_pad0",
    "pool_ave_k3s2_6x6_pad1",
    "pool_ave_k3s2_7x7_pad0",
    "pool_ave_k3s2_7x7_pad1",
    "pool_global_ave",
    "pool_global_max",
    "pool_max_floor_6x6",
    "pool_max_k3s2_6x6_pad0",
    "pool_max_k3s2_6x6_pad1",
    "pool_max_k3s2_7x7_pad0",
    "pool_max_k3s2_7x7_pad1",
    "pool_max_mask",
]


@pytest.mark.parametrize("case", POOL_CASES)
def test_general_path_matches_caffe(case, run_golden_case, monkeypatch):
    monkeypatch.setattr(pooling, "_torch_pooled_size", lambda *a: -1)  # never the fast path
    checked, failures, _ = run_golden_case(case)
    assert checked and not failures, failures


@pytest.mark.parametrize(
    "size,k,s,p,mode,want",
    [
        (6, 3, 2, 0, 0, 3),
        (6, 3, 2, 1, 0, 4),
        (7, 3, 2, 1, 0, 4),
        (6, 3, 2, 0, 1, 2),
        (6, 1, 3, 0, 0, 3),
        (5, 2, 2, 1, 0, 3),
        (4, 3, 3, 2, 0, 2),
    ],
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


@pytest.mark.parametrize(
    "shape,k,s,p,ceil",
    [
        ((8, 20, 24, 24), 2, 2, 0, True),
        ((8, 50, 8, 8), 2, 2, 0, True),
        ((4, 32, 32, 32), 3, 2, 0, True),
        ((4, 32, 16, 16), 3, 2, 1, True),
        ((4, 3, 7, 7), 3, 2, 1, False),
        ((3, 5, 9, 9), 2, 1, 0, True),
        ((2, 1, 6, 6), 2, 2, 0, True),
    ],
)
@pytest.mark.parametrize("values", ["normal", "ties", "small integers"])
def test_cpu_max_pool_equals_torch_bit_for_bit(shape, k, s, p, ceil, values):
    """The CPU MAX path (channels-last forward, torch's NCHW backward) gives exactly
    F.max_pool2d's values, argmax indices and input gradient, ties included (first maximum in
    row-major order, as Caffe), on overlapping, padded and non-overlapping windows."""
    gen = torch.Generator().manual_seed(0)
    if values == "normal":
        x = torch.randn(*shape, generator=gen)
    elif values == "ties":
        x = torch.zeros(*shape)
        x[..., ::3, ::5] = 1.0
    else:
        x = torch.randint(0, 3, shape, generator=gen).float()
    ours_x, ref_x = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, ours_idx = pooling._MaxPoolCpu.apply(ours_x, (k, k), (s, s), (p, p), ceil)
    ref, ref_idx = F.max_pool2d(ref_x, k, s, p, 1, ceil, True)
    grad = torch.randn(ref.shape, generator=gen)
    ours.backward(grad)
    ref.backward(grad)
    assert ours.is_contiguous() and ours_x.grad.is_contiguous()
    assert torch.equal(ours, ref)
    assert torch.equal(ours_idx, ref_idx)
    assert torch.equal(ours_x.grad, ref_x.grad)


def test_max_pooling_layer_backward_on_the_cpu_path():
    """A MAX Pooling layer with a mask top, forward and backward through the net: the same
    output, mask and bottom gradient as F.max_pool2d (the layer uses the CPU path)."""
    text = """
    force_backward: true
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }
    layer { name: "p" type: "Pooling" bottom: "x" top: "p" top: "m"
            pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
    """
    net = Net(parse_net(text), "TRAIN")
    x = np.random.default_rng(1).integers(0, 4, (2, 3, 8, 8)).astype(np.float32)
    out = net.forward(x=x)
    ref_x = torch.from_numpy(x).requires_grad_()
    ref, ref_idx = F.max_pool2d(ref_x, 3, 2, 0, 1, True, True)
    np.testing.assert_array_equal(out["p"], ref.detach().numpy())
    np.testing.assert_array_equal(out["m"], ref_idx.numpy().astype(np.float32))
    grad = np.random.default_rng(2).standard_normal(ref.shape).astype(np.float32)
    diffs = net.backward(p=grad)
    ref.backward(torch.from_numpy(grad))
    np.testing.assert_array_equal(diffs["x"], ref_x.grad.numpy())
