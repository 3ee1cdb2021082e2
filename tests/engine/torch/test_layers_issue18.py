"""Behaviour of the layers added for issue 18 that the real-Caffe golden cases cannot pin:
STOCHASTIC pooling (Caffe has only GPU kernels for it), parameter errors Caffe CHECKs, the
registry's nearest-alternative hint and `elasticthought layers`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elasticthought.cli import main
from elasticthought.engine.prototxt import parse_net
from elasticthought.engine.torch.layer import LAYERS, LayerError, UnsupportedLayer, layer_class
from elasticthought.engine.torch.net import Net

NEW_LAYERS = [
    "BatchReindex", "Clip", "ContrastiveLoss", "Embed", "Filter", "HDF5Data", "HDF5Output",
    "HingeLoss", "InfogainLoss", "LSTM", "LSTMUnit", "RNN", "MultinomialLogisticLoss", "MVN",
    "Parameter", "Reduction", "SPP", "Swish", "Threshold", "Tile", "WindowData",
    "Im2col",
]  # fmt: skip


def _net(body: str, shape: list[int], phase: str = "TRAIN") -> Net:
    dims = " ".join(f"dim: {d}" for d in shape)
    text = (
        "force_backward: true\n"
        f'layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ {dims} }} }} }}\n'
        + body
    )
    return Net(parse_net(text), phase)


def test_new_layers_are_registered_and_listed(capsys):
    assert set(NEW_LAYERS) <= set(LAYERS)
    assert main(["layers"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line.split()[0] for line in lines]
    assert listed == sorted(listed) and set(NEW_LAYERS) <= set(listed) and "Data" in listed
    # Python layers: listed as opt-in, but not in the registry the service validates against
    assert "--allow-python-layers" in lines[listed.index("Python")]
    assert "Python" not in LAYERS
    assert main(["layers", "Swish"]) == 0
    assert main(["layers", "Python"]) == 1
    assert "--allow-python-layers" in capsys.readouterr().out


def test_unsupported_type_names_the_nearest_supported_one(capsys):
    with pytest.raises(UnsupportedLayer, match=r"'relu'; nearest supported: 'ReLU'; supported:"):
        layer_class("relu")
    with pytest.raises(
        UnsupportedLayer,
        match=r"'ConvolutionDepthwise'; nearest supported: "
        r"'Convolution'",
    ):
        layer_class("ConvolutionDepthwise")
    assert main(["layers", "AnnotatedData"]) == 1
    assert "nearest supported: 'Data'" in capsys.readouterr().out
    with pytest.raises(UnsupportedLayer) as info:
        layer_class("PriorBox")
    assert "nearest" not in str(info.value)


# --- STOCHASTIC pooling -----------------------------------------------------------------------
STO = 'layer {{ name: "p" type: "Pooling" bottom: "x" top: "p" pooling_param {{ pool: STOCHASTIC ' \
      "kernel_size: {k} stride: {s} }} }}\n"  # fmt: skip


def _windows(x: np.ndarray, k: int, s: int) -> list[tuple[int, int, np.ndarray]]:
    """(oh, ow, window values row-major) with Caffe's ceil output size, clipped windows."""
    h, w = x.shape
    oh, ow = -(-(h - k) // s) + 1, -(-(w - k) // s) + 1
    return [
        (i, j, x[i * s : min(i * s + k, h), j * s : min(j * s + k, w)].reshape(-1))
        for i in range(oh)
        for j in range(ow)
    ]


def test_stochastic_pooling_test_phase_is_the_self_weighted_average():
    rng = np.random.RandomState(0)
    x = rng.uniform(0, 2, size=(2, 3, 7, 7)).astype(np.float32)
    net = _net(STO.format(k=3, s=2), [2, 3, 7, 7], "TEST")
    out = net.forward(x=x)["p"]
    assert out.shape == (2, 3, 3, 3)
    for n in range(2):
        for c in range(3):
            for i, j, win in _windows(x[n, c].astype(np.float64), 3, 2):
                want = (win * win).sum() / (win.sum() + np.finfo(np.float32).tiny)
                assert out[n, c, i, j] == pytest.approx(want, rel=1e-5)


def test_stochastic_pooling_train_samples_in_proportion_to_the_values():
    values = np.array([1, 2, 3, 4], np.float32).reshape(1, 1, 2, 2)
    x = np.tile(values, (4000, 1, 1, 1))
    torch.manual_seed(5)
    net = _net(STO.format(k=2, s=2), [4000, 1, 2, 2])
    picked = net.forward(x=x)["p"].reshape(-1)
    freq = np.array([(picked == v).mean() for v in (1, 2, 3, 4)])
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.03)
    # the gradient goes to the picked element only
    diff = net.backward(p=np.ones((4000, 1, 1, 1), np.float32))["x"].reshape(4000, 4)
    np.testing.assert_array_equal(diff.sum(1), np.ones(4000))
    np.testing.assert_array_equal(diff.argmax(1) + 1, picked)
    # seeded: the same draws again
    torch.manual_seed(5)
    again = _net(STO.format(k=2, s=2), [4000, 1, 2, 2]).forward(x=x)["p"].reshape(-1)
    np.testing.assert_array_equal(again, picked)


def test_stochastic_pooling_all_zero_window_picks_zero():
    net = _net(STO.format(k=2, s=2), [1, 1, 4, 4])
    out = net.forward(x=np.zeros((1, 1, 4, 4), np.float32))["p"]
    np.testing.assert_array_equal(out, np.zeros((1, 1, 2, 2)))


# --- errors Caffe CHECKs and no-backward rules ------------------------------------------------
@pytest.mark.parametrize(
    "body, match",
    [
        ('layer { name: "c" type: "Clip" bottom: "x" top: "c" clip_param { min: 0 } }',
         "min and max"),
        ('layer { name: "t" type: "Tile" bottom: "x" top: "t" }', "tiles must be specified"),
        ('layer { name: "t" type: "Tile" bottom: "x" top: "t" tile_param { tiles: 0 } }',
         "positive"),
        ('layer { name: "e" type: "Embed" bottom: "x" top: "e" embed_param { input_dim: 3 } }',
         "num_output must be positive"),
        ('layer { name: "s" type: "SPP" bottom: "x" top: "s" spp_param { pyramid_height: 4 } }',
         "pad must be smaller"),
        ('layer { name: "r" type: "Reduction" bottom: "x" top: "r" reduction_param { axis: 4 } }',
         "out of range"),
    ],
)  # fmt: skip
def test_bad_parameters_are_refused(body: str, match: str):
    with pytest.raises(LayerError, match=match):
        _net(body, [2, 3, 3, 3])


def test_embed_refuses_indices_out_of_range():
    net = _net(
        'layer { name: "e" type: "Embed" bottom: "x" top: "e" '
        "embed_param { num_output: 2 input_dim: 3 } }",
        [2],
    )
    with pytest.raises(LayerError, match=r"indices must lie in \[0, 3\), got 0\.\.3"):
        net.forward(x=np.array([0, 3], np.float32))


def test_threshold_has_no_gradient_and_labels_get_none():
    net = _net('layer { name: "t" type: "Threshold" bottom: "x" top: "t" }', [4])
    out = net.forward(x=np.array([-1, 0, 0.5, 2], np.float32))["t"]
    np.testing.assert_array_equal(out, [0, 0, 1, 1])
    body = (
        'layer { name: "l" type: "Input" top: "l" input_param { shape { dim: 3 } } }\n'
        'layer { name: "h" type: "HingeLoss" bottom: "x" bottom: "l" top: "h" }\n'
    )
    net = _net(body, [3, 4])
    net.forward(x=np.ones((3, 4), np.float32), l=np.array([0, 1, 3], np.float32))
    diffs = net.backward(diffs=["l"])
    np.testing.assert_array_equal(diffs["l"], np.zeros(3))
    assert np.abs(diffs["x"]).sum() > 0


def test_infogain_refuses_the_deprecated_normalize():
    body = (
        'layer { name: "l" type: "Input" top: "l" input_param { shape { dim: 2 } } }\n'
        'layer { name: "h" type: "Input" top: "h" input_param { shape { dim: 3 dim: 3 } } }\n'
        'layer { name: "i" type: "InfogainLoss" bottom: "x" bottom: "l" bottom: "h" top: "i" '
        "loss_param { normalize: true } }\n"
    )
    with pytest.raises(LayerError, match="normalize is deprecated"):
        _net(body, [2, 3])


def test_parameter_layer_round_trips_through_a_caffemodel(tmp_path):
    body = (
        'layer { name: "p" type: "Parameter" top: "p" '
        "parameter_param { shape { dim: 2 dim: 3 } } }\n"
    )
    net = _net(body, [1])
    net.params["p"][0].data[...] = np.arange(6, dtype=np.float32).reshape(2, 3)
    net.save(tmp_path / "p.caffemodel")
    other = _net(body, [1])
    other.copy_from(str(tmp_path / "p.caffemodel"))
    np.testing.assert_array_equal(other.forward()["p"], np.arange(6).reshape(2, 3))


def test_a_loss_layer_without_a_top_still_counts():
    """Caffe's AutoTopBlobs: a loss layer with no top gets an anonymous one (not an output)
    whose loss is in the net's loss and drives the gradients."""
    body = (
        'layer { name: "l" type: "Input" top: "l" input_param { shape { dim: 2 } } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "l" }\n'
    )
    net = _net(body, [2, 3])
    net.blobs["x"].data[...] = [[1, 2, 3], [0, 0, 5]]
    net.blobs["l"].data[...] = [2, 0]
    loss = net.forward_backward()
    assert net.outputs == []
    assert loss == pytest.approx((0.40760596 + 5.0134) / 2, rel=1e-4)
    assert np.abs(net.blobs["x"].diff).sum() > 0


def test_the_service_refuses_python_layers_and_accepts_the_new_types(tmp_path):
    """The REST API validates nets against the checking engine's registry: Python layers are a
    422 there, an unknown type a 422 naming the nearest supported one, the new BVLC types pass."""
    from elasticthought.api.app import create_app
    from elasticthought.api.errors import ApiError
    from elasticthought.api.solvers import validate_net
    from elasticthought.blobs import open_blobs
    from elasticthought.config import Config
    from elasticthought.store import open_store

    store = open_store(f"sqlite://{tmp_path / 'db.sqlite'}")
    app = create_app(Config(data_dir=str(tmp_path)), store, open_blobs(f"file://{tmp_path}/b"))
    data = (
        'layer { name: "d" type: "Data" top: "data" top: "label" '
        'data_param { source: "x" batch_size: 2 } }\n'
    )
    python = (
        'layer { name: "p" type: "Python" bottom: "data" top: "p" '
        'python_param { module: "m" layer: "L" } }\n'
    )
    with app.app_context():
        with pytest.raises(ApiError) as info:
            validate_net(data + python)
        assert info.value.code == 422 and "'Python'" in info.value.detail
        typo = 'layer { name: "t" type: "Tresh0ld" bottom: "data" top: "t" }\n'
        with pytest.raises(ApiError) as info:
            validate_net(data + typo)
        assert info.value.code == 422
        assert "'Tresh0ld'" in info.value.detail and "layer 't'" in info.value.detail
        assert "nearest supported: 'Threshold'" in info.value.detail
        swish = 'layer { name: "s" type: "Swish" bottom: "data" top: "s" }\n'
        assert validate_net(data + swish) == "DATA"
