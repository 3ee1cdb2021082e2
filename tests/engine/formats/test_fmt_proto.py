"""Our caffe.proto: generated module is fresh, imports with the pinned runtime, and uses
Caffe's field numbers and defaults (so binary files interoperate)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from elasticthought.engine.proto import caffe_pb2

REPO = Path(__file__).resolve().parents[3]
PROTO_DIR = REPO / "elasticthought" / "engine" / "proto"


def test_generated_module_is_fresh(tmp_path):
    subprocess.run(
        ["bash", str(REPO / "scripts" / "gen-proto"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    fresh = (tmp_path / "caffe_pb2.py").read_text()
    committed = (PROTO_DIR / "caffe_pb2.py").read_text()
    assert fresh == committed, "caffe_pb2.py is stale: run scripts/gen-proto"


def _number(message, field: str) -> int:
    return message.DESCRIPTOR.fields_by_name[field].number


def test_field_numbers_match_caffe():
    # A sample across messages; values are Caffe's wire numbers.
    expected = {
        (caffe_pb2.NetParameter, "layer"): 100,
        (caffe_pb2.NetParameter, "layers"): 2,
        (caffe_pb2.NetParameter, "input_shape"): 8,
        (caffe_pb2.LayerParameter, "convolution_param"): 106,
        (caffe_pb2.LayerParameter, "batch_norm_param"): 139,
        (caffe_pb2.LayerParameter, "input_param"): 143,
        (caffe_pb2.LayerParameter, "crop_param"): 144,
        (caffe_pb2.LayerParameter, "scale_param"): 142,
        (caffe_pb2.LayerParameter, "bias_param"): 141,
        (caffe_pb2.LayerParameter, "elu_param"): 140,
        (caffe_pb2.BlobProto, "shape"): 7,
        (caffe_pb2.BlobProto, "double_data"): 8,
        (caffe_pb2.SolverParameter, "type"): 40,
        (caffe_pb2.SolverParameter, "solver_type"): 30,
        (caffe_pb2.SolverParameter, "iter_size"): 36,
        (caffe_pb2.SolverParameter, "clip_gradients"): 35,
        (caffe_pb2.SolverParameter, "weights"): 42,
        (caffe_pb2.SolverState, "current_step"): 4,
        (caffe_pb2.V1LayerParameter, "blobs_lr"): 7,
        (caffe_pb2.V1LayerParameter, "loss_param"): 42,
        (caffe_pb2.V1LayerParameter, "param"): 1001,
        (caffe_pb2.PoolingParameter, "round_mode"): 13,
        (caffe_pb2.ConvolutionParameter, "dilation"): 18,
        (caffe_pb2.Datum, "encoded"): 7,
    }
    for (message, field), number in expected.items():
        assert _number(message, field) == number, (message.DESCRIPTOR.name, field)


def test_defaults_match_caffe():
    solver = caffe_pb2.SolverParameter()
    assert solver.type == "SGD"
    assert solver.solver_mode == caffe_pb2.SolverParameter.GPU
    assert solver.regularization_type == "L2"
    assert solver.clip_gradients == -1
    assert solver.iter_size == 1
    assert solver.random_seed == -1
    assert abs(solver.delta - 1e-8) < 1e-15
    assert abs(solver.momentum2 - 0.999) < 1e-7
    assert abs(solver.rms_decay - 0.99) < 1e-7
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST
    assert caffe_pb2.ParamSpec().lr_mult == 1 and caffe_pb2.ParamSpec().decay_mult == 1
    assert caffe_pb2.PoolingParameter().stride == 1
    assert caffe_pb2.PoolingParameter().round_mode == caffe_pb2.PoolingParameter.CEIL
    assert caffe_pb2.ConvolutionParameter().bias_term is True
    assert caffe_pb2.FillerParameter().type == "constant"
    assert caffe_pb2.FillerParameter().std == 1
    assert caffe_pb2.LossParameter().normalization == caffe_pb2.LossParameter.VALID
    assert caffe_pb2.DataParameter().backend == caffe_pb2.DataParameter.LEVELDB
    assert caffe_pb2.LRNParameter().local_size == 5
    assert caffe_pb2.ExpParameter().base == -1
    assert caffe_pb2.CropParameter().axis == 2
    assert caffe_pb2.ImageDataParameter().is_color is True


def test_every_layer_of_the_engine_has_its_parameter_message():
    fields = caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
    for name in (
        "convolution_param inner_product_param pooling_param relu_param prelu_param elu_param "
        "power_param exp_param log_param dropout_param lrn_param batch_norm_param scale_param "
        "bias_param eltwise_param concat_param slice_param flatten_param reshape_param "
        "crop_param softmax_param loss_param accuracy_param argmax_param input_param "
        "dummy_data_param data_param image_data_param memory_data_param hdf5_data_param "
        "transform_param sigmoid_param tanh_param threshold_param"
    ).split():
        assert name in fields, name
