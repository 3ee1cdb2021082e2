"""Layer behaviours the golden cases do not pin: Silence, Eltwise MAX ties, BatchNorm's
setup pass, Reshape inference errors, the registry's error."""

from __future__ import annotations

import numpy as np
import pytest

from elasticthought.engine.prototxt import parse_net
from elasticthought.engine.torch.layer import LAYERS, LayerError, UnsupportedLayer, layer_class
from elasticthought.engine.torch.net import Net

ISSUE_LAYERS = [
    "Convolution",
    "Deconvolution",
    "InnerProduct",
    "Pooling",
    "ReLU",
    "PReLU",
    "ELU",
    "Sigmoid",
    "TanH",
    "AbsVal",
    "BNLL",
    "Power",
    "Exp",
    "Log",
    "Dropout",
    "LRN",
    "BatchNorm",
    "Scale",
    "Bias",
    "Eltwise",
    "Concat",
    "Slice",
    "Split",
    "Flatten",
    "Reshape",
    "Crop",
    "Softmax",
    "SoftmaxWithLoss",
    "SigmoidCrossEntropyLoss",
    "EuclideanLoss",
    "Accuracy",
    "ArgMax",
    "Silence",
    "Input",
    "DummyData",
]


def test_every_layer_of_the_issue_is_registered():
    # importing elasticthought.engine.torch.net (above) registers the layers
    assert set(ISSUE_LAYERS) <= set(LAYERS)
    with pytest.raises(UnsupportedLayer, match="supported: .*Silence"):
        layer_class("Nope")


def test_silence_has_no_tops_and_zero_diff():
    text = """
    force_backward: true
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 3 } } }
    layer { name: "p" type: "Power" bottom: "x" top: "p" power_param { scale: 2 } }
    layer { name: "s" type: "Silence" bottom: "x" }
    """
    net = Net(parse_net(text), "TRAIN")
    out = net.forward(x=np.ones(3, np.float32))
    assert list(out) == ["p"]
    diffs = net.backward(p=np.ones(3))
    np.testing.assert_array_equal(diffs["x"], [2, 2, 2])


def test_eltwise_max_ties_follow_caffe():
    """First two bottoms: a tie goes to the second; later bottoms only when strictly greater."""
    text = """
    force_backward: true
    layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 2 } } }
    layer { name: "b" type: "Input" top: "b" input_param { shape { dim: 2 } } }
    layer { name: "c" type: "Input" top: "c" input_param { shape { dim: 2 } } }
    layer { name: "m" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "m"
            eltwise_param { operation: MAX } }
    """
    net = Net(parse_net(text), "TRAIN")
    net.forward(
        a=np.array([1, 5], np.float32),
        b=np.array([1, 2], np.float32),
        c=np.array([1, 5], np.float32),
    )
    d = net.backward(m=np.array([10, 20], np.float32), diffs=["b", "c"])
    np.testing.assert_array_equal(d["a"], [0, 20])
    np.testing.assert_array_equal(d["b"], [10, 0])
    np.testing.assert_array_equal(d["c"], [0, 0])


def test_batchnorm_statistics_start_at_zero_after_setup():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 3 } } }
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "y" }
    """
    net = Net(parse_net(text), "TRAIN")
    for blob in net.params["bn"]:
        assert not blob.data.any()  # the shape-finding pass does not count as a forward


def test_reshape_that_cannot_fit_is_a_clear_error():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 5 } } }
    layer { name: "r" type: "Reshape" bottom: "x" top: "y"
            reshape_param { shape { dim: 3 dim: -1 } } }
    """
    with pytest.raises(LayerError, match=r"'r' \(Reshape\): cannot infer a dim"):
        Net(parse_net(text), "TEST")
