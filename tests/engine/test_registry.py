"""The engine registry and interface: names, the default, unknown engines, the torch engine's
facade, and the one TEST-phase transform."""

from __future__ import annotations

import types

import pytest

from elasticthought.engine import registry
from elasticthought.engine import transform as tf
from elasticthought.engine.prototxt import parse_net

NET = """
layer { name: "d" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  transform_param { scale: 0.5 mirror: true crop_size: 3 }
  data_param { source: "train" batch_size: 2 } }
layer { name: "d" type: "ImageData" top: "data" top: "label" include { phase: TEST }
  transform_param { scale: 0.25 mean_value: 3 }
  image_data_param { source: "test" batch_size: 2 is_color: false new_height: 8 new_width: 9 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param { num_output: 2 } }
"""


def test_names_and_default():
    assert registry.ENGINE_NAMES == ("torch", "caffe")
    assert registry.DEFAULT_ENGINE == "torch"
    assert registry.known("caffe") and not registry.known("tensorflow")
    with pytest.raises(registry.UnknownEngine, match="unknown engine 'tensorflow'"):
        registry.get_engine("tensorflow", None)


def test_torch_engine_facade():
    engine = registry.get_engine(None, None)
    assert engine.name == "torch"
    assert engine.available()[0] is True
    assert engine.version().startswith("torch-engine ")
    assert {"Convolution", "InnerProduct", "Data", "ImageData", "SoftmaxWithLoss"} <= set(
        engine.layer_types()
    )


def test_caffe_engine_missing_is_not_available():
    config = types.SimpleNamespace(caffe_python="/nonexistent/python3", caffe_prefix="/nowhere")
    engine = registry.get_engine("caffe", config)
    ok, reason = engine.available()
    assert not ok and "/nonexistent/python3" in reason
    assert engine.version() is None
    assert registry.available_engines(config) == ["torch"]


def test_the_test_phase_transform_is_read_from_the_test_layer():
    transform = tf.test_transform(parse_net(NET))
    assert transform == {
        "scale": 0.25, "mirror": False, "crop_size": 0, "mean_value": [3.0],
        "force_color": False, "force_gray": False,
        "is_color": False, "new_height": 8, "new_width": 9,
    }  # fmt: skip
    assert set(tf.TRANSFORM_KEYS) <= set(transform)
    assert tf.test_transform(parse_net('layer { name: "i" type: "Input" top: "x" }')) is None
