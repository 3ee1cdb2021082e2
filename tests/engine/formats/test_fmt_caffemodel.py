"""Binary Caffe files: caffemodels, solverstates and mean files of real Caffe read back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from elasticthought.engine.caffemodel import (
    array_to_blob,
    blob_shape_equals,
    blob_to_array,
    caffemodel_params,
    read_blobproto,
    read_caffemodel,
    read_mean_binaryproto,
    read_solverstate,
    write_caffemodel,
    write_mean_binaryproto,
    write_solverstate,
)
from elasticthought.engine.errors import FormatError
from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.wire import unknown_field_paths
from tests.engine.formats.fmt_support import FORMATS, GOLDEN, IMAGESET

CAFFEMODELS = sorted(GOLDEN.rglob("*.caffemodel"))
SOLVERSTATES = sorted(GOLDEN.rglob("*.solverstate"))
MEANS = [FORMATS / "mean_binaryproto" / "mean.binaryproto", IMAGESET / "imageset_mean.binaryproto"]


def test_golden_binaries_exist():
    assert len(CAFFEMODELS) >= 20 and len(SOLVERSTATES) == 2


@pytest.mark.parametrize("path", CAFFEMODELS, ids=lambda p: str(p.relative_to(GOLDEN)))
def test_caffemodel_has_no_unknown_fields_and_reserialises_identically(path):
    raw = path.read_bytes()
    net = read_caffemodel(raw, upgrade=False)
    assert unknown_field_paths(net) == []
    assert net.SerializeToString() == raw
    assert any(len(layer.blobs) for layer in list(net.layer) + list(net.layers))


def _golden_params(case, prefix):
    out = {}
    for key in case.files:
        if key.startswith(prefix):
            layer, index = key[len(prefix) :].rsplit(".", 1)
            out.setdefault(layer, {})[int(index)] = case[key]
    return out


def _assert_params_equal(params, expected):
    assert set(params) == set(expected)
    for layer, blobs in expected.items():
        assert len(params[layer]) == len(blobs), layer
        for i, want in blobs.items():
            got = params[layer][i]
            assert got.dtype == np.float32
            assert got.shape == want.shape, (layer, i)
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    "case_dir", sorted(p.parent for p in (GOLDEN / "solvers").glob("*/init.caffemodel"))
)
def test_solver_init_caffemodels_match_recorded_arrays(case_dir):
    case = np.load(case_dir / "case.npz")
    net = read_caffemodel(case_dir / "init.caffemodel")
    _assert_params_equal(caffemodel_params(net), _golden_params(case, "init.param."))


@pytest.mark.parametrize("name", ["snapshot_restore_sgd_step", "snapshot_restore_adam"])
def test_snapshot_caffemodel_and_solverstate_match_recorded_arrays(name):
    case_dir = GOLDEN / "solvers" / name
    case = np.load(case_dir / "case.npz")
    params = caffemodel_params(read_caffemodel(case_dir / "snap_iter_6.caffemodel"))
    _assert_params_equal(params, _golden_params(case, "step006.param."))

    raw = (case_dir / "snap_iter_6.solverstate").read_bytes()
    state = read_solverstate(raw)
    assert unknown_field_paths(state) == []
    assert state.SerializeToString() == raw
    assert state.iter == 6
    assert state.learned_net == "snap_iter_6.caffemodel"
    order = [(layer, i) for layer in ("ip1", "ip2") for i in (0, 1)]
    sets = ["history"] + (["history2"] if name.endswith("adam") else [])
    assert len(state.history) == len(order) * len(sets)
    for s, set_name in enumerate(sets):
        for j, (layer, i) in enumerate(order):
            got = blob_to_array(state.history[s * len(order) + j])
            np.testing.assert_array_equal(got, case[f"step006.{set_name}.{layer}.{i}"])


def test_v1_and_v2_caffemodels_hold_the_same_weights():
    tiny = FORMATS / "v1_tiny_deploy"
    case = np.load(tiny / "case.npz")
    expected = _golden_params(case, "param.")
    v2 = caffemodel_params(read_caffemodel(tiny / "weights_v2.caffemodel"))
    _assert_params_equal(v2, expected)

    v1_raw = read_caffemodel(tiny / "weights_v1.caffemodel", upgrade=False)
    assert len(v1_raw.layers) == 2 and len(v1_raw.layer) == 0
    v1 = read_caffemodel(tiny / "weights_v1.caffemodel")
    assert [layer.type for layer in v1.layer] == ["Convolution", "InnerProduct"]
    legacy = {
        ("conv1", 0): (4, 1, 3, 3),
        ("conv1", 1): (1, 1, 1, 4),
        ("ip1", 0): (1, 1, 6, 100),
        ("ip1", 1): (1, 1, 1, 6),
    }
    for layer in v1.layer:
        for i, blob in enumerate(layer.blobs):
            want = expected[layer.name][i]
            assert blob_to_array(blob).shape == legacy[(layer.name, i)]
            assert blob_shape_equals(blob, want.shape)
            np.testing.assert_array_equal(blob_to_array(blob).reshape(want.shape), want)


def test_lenet_caffemodels_read():
    lenet = GOLDEN / "lenet" / "lenet_mnist_200"
    params = caffemodel_params(read_caffemodel(lenet / "final.caffemodel"))
    shapes = {name: [a.shape for a in blobs] for name, blobs in params.items()}
    assert shapes == {
        "conv1": [(20, 1, 5, 5), (20,)],
        "conv2": [(50, 20, 5, 5), (50,)],
        "ip1": [(500, 800), (500,)],
        "ip2": [(10, 500), (10,)],
    }
    case = np.load(lenet / "case.npz")
    step = max(int(k[4:7]) for k in case.files if k.startswith("step") and ".param." in k)
    if step == 200:
        _assert_params_equal(params, _golden_params(case, f"step{step:03d}.param."))


@pytest.mark.parametrize("path", MEANS, ids=lambda p: p.parent.name)
def test_mean_binaryproto_reads_back_exactly(path, tmp_path):
    case = np.load(path.parent / "case.npz")
    key = "mean" if "mean" in case.files else "imageset_mean"
    blob = read_blobproto(path)
    assert unknown_field_paths(blob) == []
    assert not blob.HasField("shape")
    assert (blob.num, blob.channels, blob.height, blob.width) == case[key].shape
    mean = read_mean_binaryproto(path)
    assert mean.shape == case[key].shape[1:] and mean.dtype == np.float32
    np.testing.assert_array_equal(mean, case[key][0])
    # Written back as compute_image_mean writes it: identical bytes.
    write_mean_binaryproto(mean, tmp_path / "mean.binaryproto")
    assert (tmp_path / "mean.binaryproto").read_bytes() == path.read_bytes()


def test_caffemodel_roundtrip(tmp_path):
    net = caffe_pb2.NetParameter(name="t")
    layer = net.layer.add(name="ip", type="InnerProduct")
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 7
    layer.blobs.append(array_to_blob(w))
    layer.blobs.append(array_to_blob(np.float32([1.5, -2, 3]), legacy=True))
    write_caffemodel(net, tmp_path / "m.caffemodel")
    back = read_caffemodel(tmp_path / "m.caffemodel")
    assert back == net
    np.testing.assert_array_equal(blob_to_array(back.layer[0].blobs[0]), w)
    assert blob_to_array(back.layer[0].blobs[1]).shape == (1, 1, 1, 3)
    assert blob_shape_equals(back.layer[0].blobs[1], (3,))


def test_blob_variants():
    scalar = array_to_blob(np.float32(0.25))
    assert not scalar.HasField("shape")
    assert blob_to_array(scalar).shape == () and float(blob_to_array(scalar)) == 0.25
    double = caffe_pb2.BlobProto()
    double.shape.dim.extend([2])
    double.double_data.extend([1.0, 2.5])
    double.double_diff.extend([0.5, -1])
    np.testing.assert_array_equal(blob_to_array(double), np.float32([1, 2.5]))
    np.testing.assert_array_equal(blob_to_array(double, diff=True), np.float32([0.5, -1]))
    bad = caffe_pb2.BlobProto()
    bad.shape.dim.extend([3])
    bad.data.extend([1.0])
    with pytest.raises(FormatError, match="3"):
        blob_to_array(bad)
    with pytest.raises(FormatError):
        array_to_blob(np.zeros((1, 1, 1, 1, 2)), legacy=True)


def test_solverstate_roundtrip(tmp_path):
    state = caffe_pb2.SolverState(iter=5, learned_net="x.caffemodel", current_step=2)
    state.history.append(array_to_blob(np.ones((2, 2), np.float32)))
    write_solverstate(state, tmp_path / "s.solverstate")
    assert read_solverstate(tmp_path / "s.solverstate") == state


@pytest.mark.parametrize("path", [CAFFEMODELS[0], SOLVERSTATES[0], MEANS[0]], ids=str)
def test_truncated_binaries_raise_format_error(path):
    raw = path.read_bytes()
    reader = {
        ".caffemodel": read_caffemodel,
        ".solverstate": read_solverstate,
        ".binaryproto": read_mean_binaryproto,
    }[path.suffix]
    for cut in (len(raw) - 1, len(raw) // 2 + 3, 7):
        with pytest.raises(FormatError) as info:
            reader(raw[:cut])
        assert "truncated" in str(info.value) or "shape" in str(info.value)


def test_missing_file_raises_format_error(tmp_path):
    with pytest.raises(FormatError, match="cannot read"):
        read_caffemodel(tmp_path / "nope.caffemodel")


def test_blobs_rebuilt_from_arrays_give_caffes_bytes(tmp_path):
    path = GOLDEN / "lenet" / "lenet_mnist_200" / "final.caffemodel"
    net = read_caffemodel(path, upgrade=False)
    rebuilt = caffe_pb2.NetParameter()
    rebuilt.CopyFrom(net)
    for layer in rebuilt.layer:
        for blob in layer.blobs:
            blob.CopyFrom(array_to_blob(blob_to_array(blob)))
    write_caffemodel(rebuilt, tmp_path / "again.caffemodel")
    assert (tmp_path / "again.caffemodel").read_bytes() == path.read_bytes()
