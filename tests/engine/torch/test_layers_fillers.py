"""Caffe's fillers: the distributions and shapes Caffe's filler.hpp defines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.torch.fillers import FillerError, fill


def _f(**kw) -> caffe_pb2.FillerParameter:
    return caffe_pb2.FillerParameter(**kw)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(123)


def test_default_and_constant():
    assert not fill((3, 2), None).any()
    np.testing.assert_array_equal(fill((4,), _f(value=2.5)).numpy(), np.full(4, 2.5))


def test_uniform_range_and_mean():
    x = fill((200, 100), _f(type="uniform", min=-2, max=4)).numpy()
    assert x.min() >= -2 and x.max() <= 4
    assert abs(x.mean() - 1.0) < 0.05


def test_gaussian_and_sparse():
    x = fill((100, 400), _f(type="gaussian", mean=1, std=3)).numpy()
    assert abs(x.mean() - 1) < 0.05 and abs(x.std() - 3) < 0.05
    # sparse: each weight is non-zero with probability sparse / num_outputs (shape[0])
    s = fill((100, 400), _f(type="gaussian", std=1, sparse=25)).numpy()
    assert abs((s != 0).mean() - 0.25) < 0.01


@pytest.mark.parametrize("norm,n", [(0, 3 * 5 * 5), (1, 64 * 5 * 5), (2, (75 + 1600) / 2)])
def test_xavier_bound_uses_variance_norm(norm, n):
    x = fill((64, 3, 5, 5), _f(type="xavier", variance_norm=norm)).numpy()
    bound = math.sqrt(3.0 / n)
    assert x.max() <= bound and x.min() >= -bound
    assert x.max() > 0.95 * bound
    assert abs(x.std() - bound / math.sqrt(3)) < 0.05 * bound


@pytest.mark.parametrize("norm,n", [(0, 16 * 9), (1, 128 * 9)])
def test_msra_std(norm, n):
    x = fill((128, 16, 3, 3), _f(type="msra", variance_norm=norm)).numpy()
    assert abs(x.std() - math.sqrt(2.0 / n)) < 0.03 * math.sqrt(2.0 / n)
    assert abs(x.mean()) < 0.01


def test_bilinear_upsampling_kernel():
    x = fill((2, 1, 4, 4), _f(type="bilinear")).numpy()
    ramp = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
    np.testing.assert_allclose(x[0, 0], np.outer(ramp, ramp))
    np.testing.assert_array_equal(x[0], x[1])
    with pytest.raises(FillerError, match="bilinear"):
        fill((2, 3, 4), _f(type="bilinear"))


def test_positive_unitball_rows_sum_to_one():
    x = fill((5, 2, 3), _f(type="positive_unitball")).numpy()
    assert (x >= 0).all()
    np.testing.assert_allclose(x.reshape(5, -1).sum(1), 1.0, rtol=1e-6)


def test_unknown_filler():
    with pytest.raises(FillerError, match="unknown filler type 'nope'"):
        fill((2,), _f(type="nope"))
