"""The TEST-phase input transform of a train/test net: the one definition.

What the net's TEST data layer does to an image (its `transform_param`, and for ImageData its
image loading options) as a JSON-safe dict. The training job records it for its classifiers,
a classifier made from an older job reads it from the solver's net, the evaluation and the
classifier's preprocessing apply it (`transform_param`); all of them through this module.
"""

from __future__ import annotations

from typing import Any

#: The data layers that read a split, and the parameter holding their batch size and source.
DATA_PARAMS = {"Data": "data_param", "ImageData": "image_data_param"}
#: The transform_param fields classification applies (`mean_file` is kept apart).
TRANSFORM_KEYS = ("scale", "mean_value", "crop_size", "mirror", "force_color", "force_gray")
#: ImageData's image loading options.
LOADING_KEYS = ("is_color", "new_height", "new_width")
#: The fields a user may give with an uploaded model (a transform of its own).
USER_TRANSFORM_KEYS = ("scale", "mean_value", "crop_size")


class NoDataLayer(ValueError):
    """The phase's net has no Data or ImageData layer."""


def data_layer(net_param: Any, phase: str = "TEST") -> Any:
    """The first Data/ImageData layer of an already phase-filtered net."""
    for layer in net_param.layer:
        if layer.type in DATA_PARAMS:
            return layer
    raise NoDataLayer(f"the {phase} net has no Data or ImageData layer")


def transform_of(layer: Any) -> dict[str, Any]:
    """A data layer's transform (and, for ImageData, its image loading options) as JSON: what
    classification must apply to reproduce the TEST-phase input."""
    tp = layer.transform_param
    out: dict[str, Any] = {
        "scale": float(tp.scale),
        "mirror": bool(tp.mirror),
        "crop_size": int(tp.crop_size),
        "mean_value": [float(v) for v in tp.mean_value],
        "force_color": bool(tp.force_color),
        "force_gray": bool(tp.force_gray),
    }
    if tp.HasField("mean_file"):
        out["mean_file"] = tp.mean_file
    if layer.type == "ImageData":
        ip = layer.image_data_param
        out.update(
            is_color=bool(ip.is_color), new_height=int(ip.new_height), new_width=int(ip.new_width)
        )
    return out


def test_layer(net: Any) -> Any:
    """The TEST-phase data layer of a (V2) train/test NetParameter (`NoDataLayer`)."""
    from elasticthought.engine.netstate import filter_net

    return data_layer(filter_net(net, "TEST", (), 0))


def test_transform(net: Any) -> dict[str, Any] | None:
    """`transform_of` the TEST-phase data layer of a train/test net; None when it has none."""
    try:
        return transform_of(test_layer(net))
    except NoDataLayer:
        return None


def transform_param(spec: dict[str, Any] | None, mean_path: str | None = None) -> Any:
    """A `TransformationParameter` from a transform dict (`mean_path`: the local mean file)."""
    from elasticthought.engine.proto import caffe_pb2

    param = caffe_pb2.TransformationParameter()
    spec = spec or {}
    param.scale = float(spec.get("scale", 1.0))
    param.crop_size = int(spec.get("crop_size") or 0)
    param.mean_value.extend(float(v) for v in spec.get("mean_value") or [])
    if mean_path:
        param.mean_file = mean_path
    return param
