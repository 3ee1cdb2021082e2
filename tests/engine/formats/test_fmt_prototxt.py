"""Prototxt parsing, V0/V1 upgrades and include/exclude filtering."""

from __future__ import annotations

import json

import numpy as np
import pytest

from elasticthought.engine.errors import FormatError
from elasticthought.engine.netstate import filter_net
from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.prototxt import (
    parse_net,
    parse_solver,
    parse_text,
    read_net,
    read_solver,
    to_text,
)
from elasticthought.engine.upgrade import net_needs_upgrade, upgrade_net
from tests.engine.formats.fmt_support import FORMATS, GOLDEN, SEED_EXAMPLES

V1_LENET = FORMATS / "v1_lenet"
V1_TINY = FORMATS / "v1_tiny_deploy"


def _is_solver(path) -> bool:
    return "solver" in path.name


def _all_prototxts():
    files = sorted(GOLDEN.rglob("*.prototxt")) + sorted(SEED_EXAMPLES.rglob("*.prototxt"))
    assert len(files) > 100
    return files


def test_every_shared_prototxt_parses():
    kinds = {"net": 0, "solver": 0}
    for path in _all_prototxts():
        if _is_solver(path):
            solver = read_solver(path)
            assert not solver.HasField("solver_type"), path
            kinds["solver"] += 1
        else:
            net = read_net(path)
            assert len(net.layer) > 0, path
            assert not net_needs_upgrade(net), path
            for layer in net.layer:
                assert layer.type, (path, layer.name)
            kinds["net"] += 1
    assert kinds["net"] > 100 and kinds["solver"] > 20


def test_seed_examples_are_v1_and_upgrade():
    v1 = [p for p in SEED_EXAMPLES.rglob("*.prototxt") if not _is_solver(p)]
    assert v1
    for path in v1:
        raw = parse_text(path.read_text(), caffe_pb2.NetParameter())
        assert len(raw.layers) > 0 and len(raw.layer) == 0, path
        assert net_needs_upgrade(raw)
        net = read_net(path)
        assert len(net.layer) >= len(raw.layers)
        assert len(net.layers) == 0
        assert [layer.name for layer in net.layer if layer.type != "Input"] == [
            layer.name for layer in raw.layers
        ]


@pytest.mark.parametrize(
    "source, upgraded",
    [
        (
            V1_LENET / "lenet_v1_train_test.prototxt",
            V1_LENET / "lenet_v1_train_test.upgraded.prototxt",
        ),
        (V1_TINY / "v1_deploy.prototxt", V1_TINY / "v1_deploy.upgraded.prototxt"),
    ],
)
def test_v1_upgrade_equals_caffes_upgrade_tool(source, upgraded):
    ours = read_net(source)
    caffes = parse_text(upgraded.read_text(), caffe_pb2.NetParameter())
    assert ours == caffes
    # And as text, byte for byte (Caffe's printer style).
    assert to_text(ours) == upgraded.read_text()


def test_v1_lenet_param_multipliers_match_golden():
    net = read_net(V1_LENET / "lenet_v1_train_test.prototxt")
    case = np.load(V1_LENET / "case.npz")
    lr = [p.lr_mult for layer in net.layer for p in layer.param]
    decay = [p.decay_mult for layer in net.layer for p in layer.param]
    np.testing.assert_array_equal(np.float32(lr), case["upgraded.param_lr_mult"])
    np.testing.assert_array_equal(np.float32(decay), case["upgraded.param_decay_mult"])


def test_solver_type_enum_upgrade_equals_caffe():
    ours = read_solver(V1_LENET / "lenet_v1_solver.prototxt")
    caffes = parse_text(
        (V1_LENET / "lenet_v1_solver.upgraded.prototxt").read_text(), caffe_pb2.SolverParameter()
    )
    assert ours == caffes
    assert ours.type == "Nesterov" and not ours.HasField("solver_type")
    assert to_text(ours) == (V1_LENET / "lenet_v1_solver.upgraded.prototxt").read_text()


def test_solver_with_both_type_fields_is_rejected():
    with pytest.raises(FormatError, match="solver_type"):
        parse_solver('solver_type: ADAM\ntype: "Adam"\n')


def test_solver_fields_parse():
    solver = parse_solver(
        'net: "n.prototxt"\ntest_iter: 5\ntest_iter: 7\ntest_net: "a"\ntest_state { stage: "x" }\n'
        "stepvalue: 10\nstepvalue: 20\nclip_gradients: 0.5\niter_size: 3\n"
        'regularization_type: "L1"\nsnapshot_prefix: "p"\nsolver_mode: CPU\ndevice_id: 2\n'
        'random_seed: 42\ndelta: 1e-6\nmomentum2: 0.99\nrms_decay: 0.9\ntype: "RMSProp"\n'
    )
    assert list(solver.test_iter) == [5, 7]
    assert list(solver.stepvalue) == [10, 20]
    assert solver.test_state[0].stage == ["x"]
    assert solver.iter_size == 3 and solver.random_seed == 42
    assert solver.solver_mode == caffe_pb2.SolverParameter.CPU and solver.device_id == 2


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "text, line, column, words",
    [
        ('name: "x"\nlayer {\n  nme: "a"\n}\n', 3, 3, "nme"),
        ('name: "x"\nlayer {\n  name: "a"\n  type: "ReLU"\n', None, None, "}"),
        ('layer {\n  name: "a"\n  convolution_param { num_output: -3 }\n}\n', 3, None, ""),
        ('layers {\n  name: "a"\n  type: NOT_A_LAYER\n}\n', 3, None, "NOT_A_LAYER"),
        ('name: "x" name: "y"\n', 1, None, "name"),
        ('layer { name: "a" } }\n', 1, None, ""),
    ],
)
def test_malformed_text_names_line_and_column(text, line, column, words):
    with pytest.raises(FormatError) as info:
        parse_net(text)
    err = info.value
    assert err.line is not None and err.column is not None
    if line is not None:
        assert err.line == line
    if column is not None:
        assert err.column == column
    assert f"{err.line}:{err.column}" in str(err)
    assert words in str(err)


def test_read_net_error_names_file(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  bogus_field: 1\n}\n')
    with pytest.raises(FormatError) as info:
        read_net(path)
    assert str(path) in str(info.value) and info.value.line == 3
    assert "bogus_field" in str(info.value)
    with pytest.raises(FormatError, match="cannot read"):
        read_net(tmp_path / "missing.prototxt")


def test_unknown_v0_layer_type_is_rejected_at_its_line():
    text = 'name: "n"\nlayers {\n  layer { name: "x" type: "frobnicate" }\n  top: "x"\n}\n'
    with pytest.raises(FormatError, match="frobnicate") as info:
        parse_net(text)
    assert (info.value.line, info.value.column) == (3, 11)


def test_v1_layer_without_type_is_rejected():
    with pytest.raises(FormatError, match="no layer type") as info:
        parse_net('layers {\n  name: "a" top: "a"\n}\n')
    assert info.value.line == 2


def test_mixed_v1_and_v2_layers_are_rejected():
    with pytest.raises(FormatError, match="mixes"):
        parse_net('layers { name: "a" type: RELU }\nlayer { name: "b" type: "ReLU" }\n')


# ---------------------------------------------------------------------------- other upgrades


def test_v0_net_upgrades_with_padding_folded():
    text = """
name: "v0"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers {
  layer { name: "pad1" type: "padding" pad: 2 }
  bottom: "data" top: "pad1"
}
layers {
  layer {
    name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 2 biasterm: false
    weight_filler { type: "gaussian" std: 0.01 } blobs_lr: 1 weight_decay: 0
  }
  bottom: "pad1" top: "conv1"
}
layers {
  layer { name: "pool1" type: "pool" pool: AVE kernelsize: 2 stride: 2 }
  bottom: "conv1" top: "pool1"
}
layers {
  layer { name: "drop" type: "dropout" dropout_ratio: 0.3 }
  bottom: "pool1" top: "pool1"
}
"""
    net = parse_net(text)
    assert [layer.type for layer in net.layer] == ["Input", "Convolution", "Pooling", "Dropout"]
    conv = net.layer[1].convolution_param
    assert list(net.layer[1].bottom) == ["data"]
    assert list(conv.pad) == [2] and list(conv.kernel_size) == [3] and list(conv.stride) == [2]
    assert conv.num_output == 4 and conv.bias_term is False
    assert conv.weight_filler.type == "gaussian"
    assert net.layer[1].param[0].lr_mult == 1 and net.layer[1].param[0].decay_mult == 0
    pool = net.layer[2].pooling_param
    assert pool.pool == caffe_pb2.PoolingParameter.AVE and pool.kernel_size == 2
    assert abs(net.layer[3].dropout_param.dropout_ratio - 0.3) < 1e-7
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 3, 8, 8]


def test_old_transform_fields_move_to_transform_param():
    text = """
layers {
  name: "d" type: DATA top: "data" top: "label"
  data_param { source: "db" batch_size: 4 scale: 0.5 mean_file: "m.binaryproto"
               crop_size: 3 mirror: true }
}
layer {
  name: "i" type: "ImageData" top: "d2" top: "l2"
  image_data_param { source: "list.txt" scale: 0.25 }
}
"""
    with pytest.raises(FormatError):  # V1 and V2 mixed
        parse_net(text)
    net = parse_net(text.split("layer {")[0])
    layer = net.layer[0]
    assert layer.type == "Data"
    assert layer.transform_param.scale == 0.5 and layer.transform_param.mirror
    assert layer.transform_param.mean_file == "m.binaryproto"
    assert layer.transform_param.crop_size == 3
    for field in ("scale", "mean_file", "crop_size", "mirror"):
        assert not layer.data_param.HasField(field)
    v2 = parse_net("layer {" + text.split("layer {")[1])
    assert v2.layer[0].transform_param.scale == 0.25
    assert not v2.layer[0].image_data_param.HasField("scale")


def test_input_shape_becomes_input_layer_first():
    net = parse_net(
        'input: "a"\ninput_shape { dim: 2 dim: 3 }\ninput: "b"\ninput_shape { dim: 2 }\n'
        'layer { name: "r" type: "ReLU" bottom: "a" top: "a" }\n'
    )
    assert [layer.name for layer in net.layer] == ["input", "r"]
    assert list(net.layer[0].top) == ["a", "b"]
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[2, 3], [2]]
    assert not net.input and not net.input_shape and not net.input_dim


def test_bad_input_dims_are_rejected():
    with pytest.raises(FormatError, match="input_dim"):
        parse_net('input: "a"\ninput_dim: 1\ninput_dim: 2\n')


def test_batchnorm_three_zero_params_are_dropped():
    param = "param { lr_mult: 0 } " * 3
    net = parse_net(f'layer {{ name: "bn" type: "BatchNorm" {param} bottom: "x" top: "x" }}')
    assert len(net.layer[0].param) == 0


def test_upgrade_does_not_modify_its_argument():
    raw = parse_text((V1_TINY / "v1_deploy.prototxt").read_text(), caffe_pb2.NetParameter())
    before = raw.SerializeToString()
    upgrade_net(raw)
    assert raw.SerializeToString() == before


# ---------------------------------------------------------------------------- filtering


def _names(net):
    return [layer.name for layer in net.layer]


def test_filter_v1_lenet_by_phase():
    net = read_net(V1_LENET / "lenet_v1_train_test.prototxt")
    train = filter_net(net, "TRAIN")
    test = filter_net(net, "test")
    assert train.state.phase == caffe_pb2.TRAIN and test.state.phase == caffe_pb2.TEST
    data_train = [la for la in train.layer if la.type == "Data"]
    data_test = [la for la in test.layer if la.type == "Data"]
    assert [la.data_param.batch_size for la in data_train] == [64]
    assert [la.data_param.batch_size for la in data_test] == [100]
    assert "accuracy" in _names(test)
    meta = json.loads((V1_LENET / "meta.json").read_text())
    assert meta["family"] == "formats"
    assert filter_net(net, caffe_pb2.TRAIN) == train


def test_filter_by_stage_and_level():
    net = parse_net(
        """
state { level: 1 stage: "base" }
layer { name: "always" type: "ReLU" }
layer { name: "lvl2" type: "ReLU" include { min_level: 2 } }
layer { name: "lvl_le1" type: "ReLU" include { max_level: 1 } }
layer { name: "needs_deploy" type: "ReLU" include { stage: "deploy" } }
layer { name: "needs_base" type: "ReLU" include { stage: "base" } }
layer { name: "not_deploy" type: "ReLU" exclude { stage: "deploy" } }
layer { name: "not_stage_base" type: "ReLU" include { not_stage: "base" } }
layer { name: "train_or_deploy" type: "ReLU" include { phase: TRAIN } include { stage: "deploy" } }
"""
    )
    got = _names(filter_net(net, "TEST"))
    assert got == ["always", "lvl_le1", "needs_base", "not_deploy"]
    got = _names(filter_net(net, "TEST", stages=["deploy"], level=2))
    assert got == ["always", "lvl2", "needs_deploy", "needs_base", "train_or_deploy"]
    assert _names(filter_net(net, "TRAIN")) == [
        "always",
        "lvl_le1",
        "needs_base",
        "not_deploy",
        "train_or_deploy",
    ]


def test_filter_rejects_include_and_exclude_together():
    net = parse_net(
        'layer { name: "x" type: "ReLU" include { phase: TRAIN } exclude { phase: TEST } }'
    )
    with pytest.raises(FormatError, match="both include and exclude"):
        filter_net(net, "TRAIN")
    with pytest.raises(FormatError, match="phase"):
        filter_net(net, "VALIDATE")


def test_filter_upgrades_old_nets():
    text = (V1_LENET / "lenet_v1_train_test.prototxt").read_text()
    raw = parse_text(text, caffe_pb2.NetParameter())
    assert filter_net(raw, "TEST") == filter_net(upgrade_net(raw), "TEST")
