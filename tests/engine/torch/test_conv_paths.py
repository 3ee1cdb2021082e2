"""Which CPU convolution a forward uses (conv.ONEDNN_CHANNEL_BLOCK): torch's own without
gradients when the outputs are off oneDNN's 16-channel blocks, oneDNN on channels-last tensors
with gradients when inputs (more than 16) and outputs are both off them, oneDNN otherwise; all
give the same numbers (to float rounding), gradients included."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elasticthought.engine.prototxt import parse_net
from elasticthought.engine.torch.layer import LayerError
from elasticthought.engine.torch.layers import conv
from elasticthought.engine.torch.net import Net

NET = """
force_backward: true
layer {{ name: "x" type: "Input" top: "x"
  input_param {{ shape {{ dim: 3 dim: {inputs} dim: 9 dim: 9 }} }} }}
layer {{ name: "c" type: "Convolution" bottom: "x" top: "c"
  convolution_param {{ num_output: {outputs} kernel_size: 3 group: {group}
    weight_filler {{ type: "gaussian" std: 0.5 }}
    bias_filler {{ type: "constant" value: 0.1 }} }} }}
"""

# (inputs, outputs, group): the path without gradients, the path with them
CASES = [
    ((2, 20, 1), conv.NATIVE, conv.ONEDNN),
    ((2, 50, 1), conv.NATIVE, conv.ONEDNN),
    ((20, 50, 1), conv.NATIVE, conv.CHANNELS_LAST),
    ((50, 30, 1), conv.NATIVE, conv.CHANNELS_LAST),
    ((16, 20, 1), conv.NATIVE, conv.ONEDNN),  # 16 inputs are on the grid
    ((20, 32, 1), conv.ONEDNN, conv.ONEDNN),  # 32 outputs are on the grid
    ((20, 20, 2), conv.ONEDNN, conv.ONEDNN),  # grouped: always oneDNN
]


def _path_seen(x: torch.Tensor) -> str:
    """The path a convolution of the NCHW input `x` ran on, from the backend switch and from
    the input's layout (channels-last is not NCHW-contiguous when there are 2+ channels)."""
    if not torch.backends.mkldnn.enabled:
        return conv.NATIVE
    return conv.ONEDNN if x.is_contiguous() else conv.CHANNELS_LAST


@pytest.mark.parametrize(("shape", "without_grad", "with_grad"), CASES)
def test_the_path_depends_on_the_layer_and_the_numbers_do_not(
    monkeypatch: pytest.MonkeyPatch, shape: tuple, without_grad: str, with_grad: str
) -> None:
    inputs, outputs, group = shape
    seen: list[str] = []
    real = conv._CONV[2]

    def recording(x, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.append(_path_seen(x))
        return real(x, *args, **kwargs)

    monkeypatch.setitem(conv._CONV, 2, recording)
    torch.manual_seed(3)
    net = Net(parse_net(NET.format(inputs=inputs, outputs=outputs, group=group)), "TEST")
    x = np.random.RandomState(0).uniform(-1, 1, size=(3, inputs, 9, 9)).astype(np.float32)
    seen.clear()  # the net's set-up ran a forward
    with torch.no_grad():
        without = net.forward(x=x)["c"].copy()
    with torch.enable_grad():
        with_grad_out = net.forward(x=x)["c"].copy()
        top_diff = np.random.RandomState(1).uniform(-1, 1, size=with_grad_out.shape)
        net.backward(c=top_diff.astype(np.float32))
        grads = [blob.grad.clone() for blob in net.layers[1].blobs]
        bottom_grad = net.blobs["x"].grad.clone()
    assert all(float(g.abs().sum()) > 0 for g in [*grads, bottom_grad])
    assert seen == [without_grad, with_grad]
    assert torch.backends.mkldnn.enabled  # given back after the forward
    np.testing.assert_allclose(without, with_grad_out, rtol=1e-5, atol=1e-5)
    assert net.blobs["c"].tensor.is_contiguous()  # the next layer gets an NCHW top

    # the same layer on plain oneDNN gives the same gradients
    monkeypatch.setattr(conv._ConvBase, "_cpu_path", lambda self, x: conv.ONEDNN)
    with torch.enable_grad():
        np.testing.assert_allclose(net.forward(x=x)["c"], with_grad_out, rtol=1e-5, atol=1e-5)
        net.clear_param_diffs()
        net.backward(c=top_diff.astype(np.float32))
    for got, want in zip(net.layers[1].blobs, grads, strict=True):
        torch.testing.assert_close(got.grad, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(net.blobs["x"].grad, bottom_grad, rtol=1e-4, atol=1e-4)


def test_the_backend_switch_is_given_back_when_the_forward_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("boom")

    net = Net(parse_net(NET.format(inputs=2, outputs=20, group=1)), "TEST")
    monkeypatch.setitem(conv._CONV, 2, failing)
    with torch.no_grad(), pytest.raises(LayerError, match="boom"):
        net.forward(x=np.zeros((3, 2, 9, 9), np.float32))
    assert torch.backends.mkldnn.enabled
