"""Which CPU convolution a forward uses: torch's own without gradients when the output
channels are off oneDNN's 16-channel blocks, oneDNN otherwise; both give Caffe's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elasticthought.engine.prototxt import parse_net
from elasticthought.engine.torch.layer import LayerError
from elasticthought.engine.torch.layers import conv
from elasticthought.engine.torch.net import Net

NET = """
layer {{ name: "x" type: "Input" top: "x"
  input_param {{ shape {{ dim: 3 dim: 2 dim: 9 dim: 9 }} }} }}
layer {{ name: "c" type: "Convolution" bottom: "x" top: "c"
  convolution_param {{ num_output: {outputs} kernel_size: 3 group: {group}
    weight_filler {{ type: "gaussian" std: 0.5 }}
    bias_filler {{ type: "constant" value: 0.1 }} }} }}
"""


@pytest.mark.parametrize(
    ("outputs", "group", "native"), [(20, 1, True), (50, 1, True), (32, 1, False), (20, 2, False)]
)
def test_a_forward_without_gradients_picks_the_path_by_the_layer_alone(
    monkeypatch: pytest.MonkeyPatch, outputs: int, group: int, native: bool
) -> None:
    seen: list[bool] = []
    real = conv._CONV[2]

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        seen.append(torch.backends.mkldnn.enabled)
        return real(*args, **kwargs)

    monkeypatch.setitem(conv._CONV, 2, recording)
    torch.manual_seed(3)
    net = Net(parse_net(NET.format(outputs=outputs, group=group)), "TEST")
    seen.clear()  # the net's set-up ran a forward
    x = np.random.RandomState(0).uniform(-1, 1, size=(3, 2, 9, 9)).astype(np.float32)
    with torch.no_grad():
        without = net.forward(x=x)["c"].copy()
    with torch.enable_grad():
        with_grad = net.forward(x=x)["c"].copy()
    # without gradients: oneDNN off exactly for the layers off its blocks; with: always on
    assert seen == [not native, True]
    assert torch.backends.mkldnn.enabled  # given back after the forward
    np.testing.assert_allclose(without, with_grad, rtol=1e-5, atol=1e-5)


def test_the_backend_switch_is_given_back_when_the_forward_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("boom")

    net = Net(parse_net(NET.format(outputs=20, group=1)), "TEST")
    monkeypatch.setitem(conv._CONV, 2, failing)
    with torch.no_grad(), pytest.raises(LayerError, match="boom"):
        net.forward(x=np.zeros((3, 2, 9, 9), np.float32))
    assert torch.backends.mkldnn.enabled
