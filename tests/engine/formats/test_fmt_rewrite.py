"""Per-job rewrite of solver + net into a work directory."""

from __future__ import annotations

import pytest

from elasticthought.engine.db import open_db
from elasticthought.engine.errors import FormatError
from elasticthought.engine.netstate import filter_net
from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.prototxt import parse_net, read_net, read_solver
from elasticthought.engine.rewrite import data_layers, layer_phases, rewrite_for_job
from tests.engine.formats.fmt_support import SEED_EXAMPLES


def _make_db(path, backend):
    open_db(path, backend, "w").close()
    return path


def test_rewrite_seed_mnist_example(tmp_path):
    solver = read_solver(SEED_EXAMPLES / "mnist" / "mnist_solver.prototxt")
    net = read_net(SEED_EXAMPLES / "mnist" / "mnist_net.prototxt")
    train = _make_db(tmp_path / "data" / "train", "leveldb")
    test = _make_db(tmp_path / "data" / "test", "lmdb")
    work = tmp_path / "job"
    files = rewrite_for_job(
        solver,
        net,
        work,
        {"TRAIN": train, "TEST": test},
        mean_file=tmp_path / "mean.binaryproto",
        solver_mode="CPU",
    )
    assert files.solver_path == work.resolve() / "solver.prototxt"
    again = read_solver(files.solver_path)
    assert again == files.solver
    assert again.net == str(files.net_path)
    assert again.snapshot_prefix.startswith(str(work.resolve()) + "/")
    assert again.snapshot_prefix == files.snapshot_prefix
    assert again.solver_mode == caffe_pb2.SolverParameter.CPU
    assert again.max_iter == solver.max_iter and again.base_lr == solver.base_lr
    rewritten = read_net(files.net_path)
    assert rewritten == files.net
    for phase, path, backend in (("TRAIN", train, "LEVELDB"), ("TEST", test, "LMDB")):
        (layer,) = [la for la in filter_net(rewritten, phase).layer if la.type == "Data"]
        assert layer.data_param.source == str(path)
        assert layer.data_param.backend == caffe_pb2.DataParameter.DB.Value(backend)
        assert layer.transform_param.mean_file == str(tmp_path / "mean.binaryproto")
        assert layer.transform_param.scale == pytest.approx(0.00390625)
    # The user's messages are not modified.
    assert net.layer[0].data_param.source != str(train)


def test_rewrite_image_data_and_explicit_names(tmp_path):
    net = read_net(SEED_EXAMPLES / "mnist" / "mnist_net_image_data.prototxt")
    solver = caffe_pb2.SolverParameter(base_lr=0.1, train_net="old.prototxt", snapshot_prefix="")
    kinds = {la.type for la, _ in data_layers(net)}
    sources = {"TRAIN": tmp_path / "train.txt", "TEST": tmp_path / "test.txt"}
    files = rewrite_for_job(
        solver,
        net,
        tmp_path / "w",
        sources,
        backend="lmdb",
        net_name="n.prototxt",
        solver_name="s.prototxt",
        snapshot_name="snap",
        device_id=1,
    )
    assert files.net_path.name == "n.prototxt" and files.solver.device_id == 1
    assert not files.solver.HasField("train_net")
    assert files.snapshot_prefix.endswith("/w/snap")
    for layer, phases in data_layers(files.net):
        param = layer.image_data_param if layer.type == "ImageData" else layer.data_param
        (phase,) = phases
        assert param.source == str(sources[phase])
    assert kinds


def test_layer_phases_and_ambiguous_sources(tmp_path):
    net = parse_net(
        'layer { name: "a" type: "Data" top: "d" include { phase: TRAIN } }\n'
        'layer { name: "b" type: "Data" top: "d" exclude { phase: TRAIN } }\n'
        'layer { name: "c" type: "Data" top: "d" }\n'
    )
    assert [layer_phases(la) for la in net.layer] == [{"TRAIN"}, {"TEST"}, {"TRAIN", "TEST"}]
    solver = caffe_pb2.SolverParameter()
    with pytest.raises(FormatError, match='"c"'):
        rewrite_for_job(solver, net, tmp_path, {"TRAIN": "x", "TEST": "y"}, backend="lmdb")
    with pytest.raises(FormatError, match="no database"):
        rewrite_for_job(solver, net, tmp_path, {"TRAIN": "x", "TEST": "x"})
    files = rewrite_for_job(solver, net, tmp_path, {"TRAIN": "x", "TEST": "x"}, backend=1)
    assert all(la.data_param.backend == caffe_pb2.DataParameter.LMDB for la in files.net.layer)
