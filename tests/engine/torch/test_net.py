"""Net semantics as Caffe defines them: in-place blobs, gradient sums, loss_weight,
propagate_down, force_backward, lr_mult 0, parameter sharing, diff accumulation, weights IO,
errors; plus the V1 deploy net and LeNet against real Caffe's outputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from elasticthought.engine.caffemodel import read_caffemodel
from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.prototxt import parse_net, read_net
from elasticthought.engine.torch.device import DeviceError
from elasticthought.engine.torch.layer import LayerError, UnsupportedLayer
from elasticthought.engine.torch.net import Net, NetError
from tests.support.paths import GOLDEN

LENET = GOLDEN / "lenet" / "lenet_mnist_200"
TINY = GOLDEN / "formats" / "v1_tiny_deploy"


def _net(text: str, phase: str = "TRAIN", **kw) -> Net:
    return Net(parse_net(text), phase, **kw)


def _meta(root: Path) -> dict:
    return json.loads((root / "meta.json").read_text())


def _npz(root: Path) -> dict[str, np.ndarray]:
    with np.load(root / "case.npz") as z:
        return {k: z[k] for k in z.files}


def _close(actual, want, info) -> bool:
    return np.allclose(actual, want, rtol=info["rtol"], atol=info["atol"])


# --------------------------------------------------------------------------------------------
# real Caffe's outputs


@pytest.mark.parametrize("proto", ["v1_deploy.prototxt", "v1_deploy.upgraded.prototxt"])
@pytest.mark.parametrize("weights", ["weights_v1.caffemodel", "weights_v2.caffemodel"])
def test_v1_tiny_deploy_forward_matches_caffe(proto, weights):
    meta, arrays = _meta(TINY), _npz(TINY)
    net = Net(str(TINY / proto), "TEST", weights=str(TINY / weights))
    assert net.inputs == ["data"]
    out = net.forward(data=arrays["input.data"])
    assert list(out) == ["prob"]
    for blob in ("conv1", "pool1", "ip1", "prob"):
        info = meta["arrays"][f"output.{blob}"]
        assert _close(net.blobs[blob].data, arrays[f"output.{blob}"], info), blob
    for layer, blobs in net.params.items():
        for i, b in enumerate(blobs):
            np.testing.assert_array_equal(b.data, arrays[f"param.{layer}.{i}"])


def test_lenet_deploy_probs_match_caffe():
    meta, arrays = _meta(LENET), _npz(LENET)
    net = Net(str(LENET / "deploy.prototxt"), "TEST", weights=str(LENET / "final.caffemodel"))
    probs = net.forward(data=arrays["deploy_input"])["prob"]
    assert probs.shape == (20, 10)
    assert _close(probs, arrays["deploy_probs"], meta["arrays"]["deploy_probs"])
    assert (probs.argmax(1) == arrays["deploy_labels"]).mean() > 0.8


def _lenet_train_with_inputs() -> caffe_pb2.NetParameter:
    """LeNet's train/test net with the TRAIN Data layer replaced by Input layers."""
    param = read_net(LENET / "lenet_train_test.prototxt")
    out = caffe_pb2.NetParameter()
    out.CopyFrom(param)
    del out.layer[:]
    data = out.layer.add(name="data", type="Input", top=["data"])
    data.input_param.shape.add(dim=[64, 1, 28, 28])
    label = out.layer.add(name="label", type="Input", top=["label"])
    label.input_param.shape.add(dim=[64])
    for layer in param.layer:
        if layer.type != "Data":
            out.layer.add().CopyFrom(layer)
    return out


def test_lenet_first_training_step_matches_caffe():
    """Loss of the first batch and the weights after one SGD step (history 0: W -= lr *
    lr_mult * (diff + wd * decay_mult * W)) equal real Caffe's."""
    meta, arrays = _meta(LENET), _npz(LENET)
    net = Net(_lenet_train_with_inputs(), "TRAIN", weights=str(LENET / "init.caffemodel"))
    net.blobs["data"].data[...] = arrays["iter000.input.data"]
    net.blobs["label"].data[...] = arrays["iter000.input.label"]
    net.clear_param_diffs()
    loss = net.forward_backward()
    assert abs(loss - float(arrays["train_loss"][0])) < 1e-5
    assert net.params_lr == [1.0, 2.0] * 4
    names = [(n, i) for n, blobs in net.params.items() for i in range(len(blobs))]
    for (layer, i), blob, lr_mult, decay in zip(
        names, net.learnable_params, net.params_lr, net.params_weight_decay, strict=True
    ):
        key = f"step001.param.{layer}.{i}"
        if key not in arrays:
            continue
        w = blob.data.astype(np.float64)
        step = 0.01 * lr_mult * (blob.diff + 0.0005 * decay * w)
        assert _close(w - step, arrays[key], meta["arrays"][key]), key


def test_lenet_train_net_with_data_layer_first_batch(tmp_path, monkeypatch):
    """The train net with the real Data layer reads the first batch in order (the batch read
    while setting the net up is not skipped)."""
    for name in ("lenet_train_test.prototxt", "init.caffemodel"):
        shutil.copy(LENET / name, tmp_path / name)
    shutil.copytree(LENET / "mnist_train_lmdb", tmp_path / "mnist_train_lmdb")
    monkeypatch.chdir(tmp_path)
    arrays = _npz(LENET)
    net = Net("lenet_train_test.prototxt", "TRAIN", weights="init.caffemodel")
    try:
        loss = net.forward_backward()
        np.testing.assert_array_equal(net.blobs["data"].data, arrays["iter000.input.data"])
        np.testing.assert_array_equal(net.blobs["label"].data, arrays["iter000.input.label"])
        assert abs(loss - float(arrays["train_loss"][0])) < 1e-5
    finally:
        net.close()


# --------------------------------------------------------------------------------------------
# blob and gradient semantics

TWO_IP = """
name: "t" force_backward: {fb}
layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: 4 dim: 3 }} }} }}
layer {{ name: "y" type: "Input" top: "y" input_param {{ shape {{ dim: 4 dim: 2 }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "x" top: "h" {ip_param}
        inner_product_param {{ num_output: 2 weight_filler {{ type: "gaussian" }} }} }}
layer {{ name: "relu" type: "ReLU" bottom: "h" top: "h" }}
layer {{ name: "loss" type: "EuclideanLoss" bottom: "h" bottom: "y" top: "loss" {loss_extra} }}
"""


def _two_ip(fb="false", ip_param="", loss_extra="") -> Net:
    return _net(TWO_IP.format(fb=fb, ip_param=ip_param, loss_extra=loss_extra))


def _reference(net: Net, x: np.ndarray, y: np.ndarray, weight: float = 1.0):
    """The same computation in plain torch: gradients of weight * loss."""
    w = torch.tensor(net.params["ip"][0].data, requires_grad=True)
    b = torch.tensor(net.params["ip"][1].data, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    pre = F.linear(xt, w, b)
    pre.retain_grad()
    h = F.relu(pre)
    loss = ((h - torch.tensor(y)) ** 2).sum() / (2 * x.shape[0])
    (weight * loss).backward()
    grads = (pre.grad.numpy(), w.grad.numpy(), b.grad.numpy(), xt.grad.numpy())
    return float(loss.detach()), *grads, h


def test_inplace_blob_holds_final_data_and_first_version_diff():
    torch.manual_seed(0)
    net = _two_ip()
    rng = np.random.RandomState(0)
    x, y = rng.randn(4, 3).astype(np.float32), rng.randn(4, 2).astype(np.float32)
    out = net.forward(x=x, y=y)
    net.backward()
    loss, pre_grad, w_grad, b_grad, _, h = _reference(net, x, y)
    assert out["loss"] == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(net.blobs["h"].data, h.detach().numpy(), rtol=1e-6)
    assert (net.blobs["h"].data >= 0).all()
    # the in-place ReLU's backward wrote the diff w.r.t. its input into the shared diff
    np.testing.assert_allclose(net.blobs["h"].diff, pre_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.params["ip"][0].diff, w_grad, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.params["ip"][1].diff, b_grad, rtol=1e-5, atol=1e-7)
    # without force_backward the input gets no diff
    assert not net.blobs["x"].diff.any()
    assert net.blobs["loss"].diff == 1.0


def test_force_backward_gives_input_diffs_but_not_to_labels():
    torch.manual_seed(0)
    net = _two_ip(fb="true")
    rng = np.random.RandomState(1)
    x, y = rng.randn(4, 3).astype(np.float32), rng.randn(4, 2).astype(np.float32)
    net.forward(x=x, y=y)
    diffs = net.backward()
    *_, x_grad, _ = _reference(net, x, y)
    np.testing.assert_allclose(diffs["x"], x_grad, rtol=1e-5, atol=1e-7)
    # EuclideanLoss allows force_backward to its second bottom
    assert net.blobs["y"].diff.any()


def test_loss_weight_scales_gradient_not_loss_and_diffs_accumulate():
    torch.manual_seed(0)
    net = _two_ip(loss_extra="loss_weight: 3")
    rng = np.random.RandomState(2)
    x, y = rng.randn(4, 3).astype(np.float32), rng.randn(4, 2).astype(np.float32)
    net.blobs["x"].data[...] = x
    net.blobs["y"].data[...] = y
    net.clear_param_diffs()
    total = net.forward_backward()
    loss, _, w_grad, _, _, _ = _reference(net, x, y, weight=3.0)
    assert float(net.blobs["loss"].data) == pytest.approx(loss, rel=1e-6)
    assert total == pytest.approx(3 * loss, rel=1e-6)
    np.testing.assert_allclose(net.params["ip"][0].diff, w_grad, rtol=1e-5, atol=1e-7)
    net.forward_backward()  # iter_size relies on accumulation
    np.testing.assert_allclose(net.params["ip"][0].diff, 2 * w_grad, rtol=1e-5, atol=1e-6)
    net.clear_param_diffs()
    assert not net.params["ip"][0].diff.any()


def test_lr_mult_zero_means_no_param_diff():
    net = _two_ip(ip_param="param { lr_mult: 0 } param { lr_mult: 0 }")
    net.forward(x=np.ones((4, 3), np.float32), y=np.zeros((4, 2), np.float32))
    net.backward()
    assert net.params_lr == [0.0, 0.0]
    assert not net.params["ip"][0].diff.any()


def test_propagate_down_false_stops_the_gradient():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "ip" type: "InnerProduct" bottom: "x" top: "a"
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
    layer { name: "sc" type: "Scale" bottom: "a" top: "b" propagate_down: false
            scale_param { filler { type: "constant" value: 2 } } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "b" bottom: "x" top: "loss"
            propagate_down: true propagate_down: false }
    """
    net = _net(text)
    net.forward(x=np.arange(6, dtype=np.float32).reshape(2, 3))
    net.backward()
    assert net.params["sc"][0].diff.any()  # the Scale layer still learns
    assert not net.params["ip"][0].diff.any()  # nothing flows below it
    assert not net.blobs["a"].diff.any()


def test_blob_used_twice_sums_gradients_and_split_layer():
    text = """
    force_backward: true
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 5 } } }
    layer { name: "split" type: "Split" bottom: "x" top: "x1" top: "x2" }
    layer { name: "p" type: "Power" bottom: "x1" top: "p" power_param { scale: 3 } }
    layer { name: "q" type: "Power" bottom: "x2" top: "q" power_param { scale: -1 } }
    layer { name: "r" type: "Power" bottom: "x" top: "r" power_param { scale: 10 } }
    """
    net = _net(text)
    net.forward(x=np.ones(5, np.float32))
    diffs = net.backward(p=np.ones(5), q=np.ones(5), r=np.ones(5))
    np.testing.assert_allclose(diffs["x"], np.full(5, 3 - 1 + 10))
    np.testing.assert_allclose(net.blobs["x1"].diff, 3.0)
    assert net.outputs == ["p", "q", "r"]


def test_shared_params_by_name_are_one_learnable_param():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "a" type: "InnerProduct" bottom: "x" top: "a"
            param { name: "w" lr_mult: 1 } param { name: "b" lr_mult: 2 }
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
    layer { name: "b" type: "InnerProduct" bottom: "a" top: "b"
            param { name: "w" } param { name: "b" }
            inner_product_param { num_output: 3 weight_filler { type: "gaussian" } } }
    layer { name: "loss" type: "EuclideanLoss" bottom: "b" bottom: "x" top: "loss" }
    """
    net = _net(text)
    assert len(net.learnable_params) == 2
    assert net.params_lr == [1.0, 2.0]
    assert net.params["b"][0].tensor is net.params["a"][0].tensor
    x = np.random.RandomState(0).randn(2, 3).astype(np.float32)
    net.forward(x=x)
    net.backward()
    w = torch.tensor(net.params["a"][0].data, requires_grad=True)
    bias = torch.tensor(net.params["a"][1].data, requires_grad=True)
    xt = torch.tensor(x)
    out = F.linear(F.linear(xt, w, bias), w, bias)
    (((out - xt) ** 2).sum() / 4).backward()
    np.testing.assert_allclose(net.params["b"][0].diff, w.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert net.params["a"][0].diff is not None


def test_shared_param_shape_mismatch_is_an_error():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "a" type: "InnerProduct" bottom: "x" top: "a" param { name: "w" }
            inner_product_param { num_output: 3 } }
    layer { name: "b" type: "InnerProduct" bottom: "a" top: "b" param { name: "w" }
            inner_product_param { num_output: 4 } }
    """
    with pytest.raises(NetError, match="cannot share param 'w'"):
        _net(text)


def test_dropout_scales_at_train_time_and_is_identity_at_test():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 20000 } } }
    layer { name: "d" type: "Dropout" bottom: "x" top: "x" dropout_param { dropout_ratio: 0.25 } }
    """
    x = np.ones(20000, np.float32)
    train = _net(text, "TRAIN")
    y = train.forward(x=x)["x"]
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    test = _net(text, "TEST")
    np.testing.assert_array_equal(test.forward(x=x)["x"], x)


def test_batchnorm_blobs_are_learnable_params_with_lr_zero():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 4 dim: 2 } } }
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" }
    """
    net = _net(text)
    assert [b.shape for b in net.params["bn"]] == [(2,), (2,), (1,)]
    assert net.params_lr == [0.0, 0.0, 0.0]
    x = np.random.RandomState(0).randn(4, 2).astype(np.float32)
    out = net.forward(x=x)["x"]
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(net.params["bn"][0].data, x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(net.params["bn"][2].data, [1.0])


def test_forward_start_end_and_input_reshape():
    net = Net(str(LENET / "deploy.prototxt"), "TEST", weights=str(LENET / "final.caffemodel"))
    x = _npz(LENET)["deploy_input"][:3]
    out = net.forward(data=x)  # a batch of 3 reshapes the input blob
    assert net.blobs["data"].shape == (3, 1, 28, 28)
    assert out["prob"].shape == (3, 10)
    part = net.forward(end="pool1")
    assert list(part) == ["pool1"] and part["pool1"].shape == (3, 20, 12, 12)
    again = net.forward(start="conv2")
    np.testing.assert_allclose(again["prob"], out["prob"], rtol=1e-6)
    blob = net.blobs["data"]
    assert blob.count == 3 * 28 * 28 and blob.num == 3 and blob.channels == 1
    blob.reshape(2, 1, 28, 28)
    assert blob.shape == (2, 1, 28, 28) and not blob.data.any()


def test_share_trained_layers_and_save_copy_roundtrip(tmp_path):
    param = _lenet_train_with_inputs()
    train = Net(param, "TRAIN", weights=str(LENET / "init.caffemodel"))
    test = Net(str(LENET / "deploy.prototxt"), "TEST")
    test.share_trained_layers(train)
    assert test.params["conv1"][0].tensor is train.params["conv1"][0].tensor
    x = _npz(LENET)["deploy_input"]
    before = test.forward(data=x)["prob"].copy()
    final = read_caffemodel(LENET / "final.caffemodel")
    train.copy_from(final)  # the test net sees the train net's new weights
    after = test.forward(data=x)["prob"]
    assert not np.allclose(before, after)
    path = tmp_path / "w.caffemodel"
    train.save(path)
    fresh = Net(str(LENET / "deploy.prototxt"), "TEST", weights=str(path))
    np.testing.assert_array_equal(fresh.forward(data=x)["prob"], after)
    proto = train.to_proto(write_diff=True)
    names = [lp.name for lp in proto.layer if len(lp.blobs)]
    assert names == ["conv1", "conv2", "ip1", "ip2"]
    assert len(proto.layer[2].blobs[0].diff) == 20 * 25


def test_copy_from_shape_mismatch_names_layer_and_shapes():
    text = """
    layer { name: "data" type: "Input" top: "data"
            input_param { shape { dim: 1 dim: 1 dim: 28 dim: 28 } } }
    layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
            convolution_param { num_output: 7 kernel_size: 5 } }
    """
    net = _net(text, "TEST")
    with pytest.raises(NetError, match=r"conv1.*shape mismatch.*\[20, 1, 5, 5\].*\[7, 1, 5, 5\]"):
        net.copy_from(str(LENET / "final.caffemodel"))


# --------------------------------------------------------------------------------------------
# errors


def test_unsupported_layer_names_it_and_lists_supported():
    text = (
        'layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
        'layer { name: "w" type: "Warp" bottom: "x" top: "y" }'
    )
    with pytest.raises(UnsupportedLayer, match=r"'Warp'.*supported:.*Convolution"):
        _net(text)


def test_unknown_bottom_and_duplicate_top_are_errors():
    with pytest.raises(NetError, match="unknown bottom blob 'nope'"):
        _net('layer { name: "r" type: "ReLU" bottom: "nope" top: "r" }')
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 } } }
    layer { name: "a" type: "ReLU" bottom: "x" top: "y" }
    layer { name: "b" type: "ReLU" bottom: "x" top: "y" }
    """
    with pytest.raises(NetError, match="multiple sources"):
        _net(text)


def test_bad_layer_parameters_are_clear_errors():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }
    layer { name: "c" type: "Convolution" bottom: "x" top: "c"
            convolution_param { num_output: 4 kernel_size: 3 group: 2 } }
    """
    with pytest.raises(LayerError, match="group 2 must divide"):
        _net(text)


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        Net(str(LENET / "deploy.prototxt"), "TEST", device="cuda")


def test_dummy_data_fills_each_forward():
    text = """
    layer { name: "d" type: "DummyData" top: "a" top: "b"
            dummy_data_param { shape { dim: 1000 } shape { dim: 2 dim: 3 }
              data_filler { type: "gaussian" std: 2 } data_filler { type: "constant" value: 5 } } }
    """
    net = _net(text)
    first = net.forward()
    a1 = first["a"].copy()
    second = net.forward()
    assert not np.array_equal(a1, second["a"])
    assert 1.8 < a1.std() < 2.2
    np.testing.assert_array_equal(second["b"], np.full((2, 3), 5.0))


def test_wrong_number_of_bottoms_or_tops_is_a_clear_error():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" top: "loss" }
    """
    with pytest.raises(NetError, match=r"'loss' \(SoftmaxWithLoss\) takes 2 bottom\(s\), got 1"):
        _net(text)


def test_shape_problem_names_the_layer_and_shapes():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 3 dim: 3 } } }
    layer { name: "c" type: "Convolution" bottom: "x" top: "c"
            convolution_param { num_output: 2 kernel_size: 5 } }
    """
    with pytest.raises(LayerError, match=r"'c' \(Convolution\).*\[1, 1, 3, 3\]"):
        _net(text)


def test_zero_axis_blobs_save_and_load(tmp_path):
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "pr" type: "PReLU" bottom: "x" top: "y" prelu_param { channel_shared: true } }
    layer { name: "sc" type: "Scale" bottom: "y" top: "z" scale_param { num_axes: 0 } }
    """
    net = _net(text, "TEST")
    assert net.params["pr"][0].shape == () and net.params["sc"][0].shape == ()
    assert float(net.params["pr"][0].data) == pytest.approx(0.25)  # Caffe's default slope
    net.params["pr"][0].data[...] = 0.5
    net.params["sc"][0].data[...] = -2.0
    path = tmp_path / "z.caffemodel"
    net.save(path)
    saved = read_caffemodel(path)
    assert not saved.layer[1].blobs[0].HasField("shape")
    other = _net(text, "TEST")
    other.copy_from(str(path))
    x = np.array([[-1, 0, 2], [3, -4, 5]], np.float32)
    np.testing.assert_allclose(other.forward(x=x)["z"], -2 * np.where(x > 0, x, 0.5 * x))
    assert other.to("cpu") is other
    np.testing.assert_allclose(other.forward(x=x)["z"], -2 * np.where(x > 0, x, 0.5 * x))


def test_forward_loss_and_blob_loss_weights():
    net = _two_ip(loss_extra="loss_weight: 2")
    rng = np.random.RandomState(3)
    net.blobs["x"].data[...] = rng.randn(4, 3)
    net.blobs["y"].data[...] = rng.randn(4, 2)
    total = net.forward_loss()
    assert total == pytest.approx(2 * float(net.blobs["loss"].data), rel=1e-6)
    assert net.blob_loss_weights == {"x": 0.0, "y": 0.0, "h": 0.0, "loss": 2.0}


def test_label_out_of_range_names_the_layer():
    text = """
    layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
    layer { name: "y" type: "Input" top: "y" input_param { shape { dim: 2 } } }
    layer { name: "loss" type: "SoftmaxWithLoss" bottom: "x" bottom: "y" top: "loss" }
    """
    net = _net(text)
    with pytest.raises(LayerError, match=r"'loss'.*label out of range \[0, 3\).*max 7"):
        net.forward(y=np.array([0, 7], np.float32))


def test_input_of_the_wrong_shape_at_forward_names_the_layer():
    net = Net(str(LENET / "deploy.prototxt"), "TEST")
    with pytest.raises(LayerError, match=r"'conv1' \(Convolution\).*\[2, 3, 28, 28\]"):
        net.forward(data=np.zeros((2, 3, 28, 28), np.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_caffe_and_trains():
    meta, arrays = _meta(LENET), _npz(LENET)
    net = Net(
        str(LENET / "deploy.prototxt"),
        "TEST",
        weights=str(LENET / "final.caffemodel"),
        device="cuda",
    )
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    probs = net.forward(data=arrays["deploy_input"])["prob"]
    assert _close(probs, arrays["deploy_probs"], meta["arrays"]["deploy_probs"])
    train = Net(
        _lenet_train_with_inputs(), "TRAIN", weights=str(LENET / "init.caffemodel"), device="cuda"
    )
    train.blobs["data"].data = arrays["iter000.input.data"]
    train.blobs["label"].data = arrays["iter000.input.label"]
    assert abs(train.forward_backward() - float(arrays["train_loss"][0])) < 1e-4
    moved = Net(str(LENET / "deploy.prototxt"), "TEST", weights=str(LENET / "final.caffemodel"))
    moved.to("cuda")
    np.testing.assert_allclose(moved.forward(data=arrays["deploy_input"])["prob"], probs, atol=1e-6)


def test_a_training_step_imports_no_symbolic_shapes() -> None:
    """A forward/backward pulls in neither torch's symbolic shapes nor sympy (about a second
    of start-up per job process on a small net), measured in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from tests.engine.torch.test_net import LENET, Net, _lenet_train_with_inputs\n"
        "net = Net(_lenet_train_with_inputs(), 'TRAIN', weights=str(LENET / 'init.caffemodel'))\n"
        "net.clear_param_diffs()\n"
        "loss = net.forward_backward()\n"
        "assert loss == loss and any(abs(b.diff).sum() > 0 for b in net.learnable_params)\n"
        "print(sorted(m for m in ('sympy', 'torch.fx.experimental.symbolic_shapes')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
