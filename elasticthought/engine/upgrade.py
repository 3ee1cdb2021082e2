"""Upgrade old Caffe nets (V0, V1, legacy inputs) and solvers to the current format.

Follows the steps Caffe applies when it reads a file: V0 -> V1, old transform fields of data
layers -> `transform_param`, V1 -> V2 (`layers {type: ENUM}` -> `layer {type: "Name"}`,
`blobs_lr`/`weight_decay` -> `param {lr_mult decay_mult}`), top-level `input`/`input_dim`/
`input_shape` -> an `Input` layer named "input", and BatchNorm's obsolete three zero-lr params
removed. Solvers: `solver_type: ENUM` -> `type: "Name"`.
"""

from __future__ import annotations

from elasticthought.engine.errors import FormatError
from elasticthought.engine.proto import caffe_pb2

V1 = caffe_pb2.V1LayerParameter

#: V1 layer type enum name -> V2 type string.
V1_TYPE_NAMES: dict[str, str] = {
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution",
    "DATA": "Data",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}

#: V0 layer type string -> V1 enum name.
V0_TYPE_NAMES: dict[str, str] = {
    "accuracy": "ACCURACY",
    "bnll": "BNLL",
    "concat": "CONCAT",
    "conv": "CONVOLUTION",
    "data": "DATA",
    "dropout": "DROPOUT",
    "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN",
    "hdf5_data": "HDF5_DATA",
    "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL",
    "images": "IMAGE_DATA",
    "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT",
    "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS",
    "pool": "POOLING",
    "relu": "RELU",
    "sigmoid": "SIGMOID",
    "softmax": "SOFTMAX",
    "softmax_loss": "SOFTMAX_LOSS",
    "split": "SPLIT",
    "tanh": "TANH",
    "window_data": "WINDOW_DATA",
}

#: Legacy SolverParameter.solver_type enum name -> `type` string.
SOLVER_TYPE_NAMES: dict[str, str] = {
    "SGD": "SGD",
    "NESTEROV": "Nesterov",
    "ADAGRAD": "AdaGrad",
    "RMSPROP": "RMSProp",
    "ADADELTA": "AdaDelta",
    "ADAM": "Adam",
}

_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
_V1_DATA_PARAMS = {
    V1.DATA: "data_param",
    V1.IMAGE_DATA: "image_data_param",
    V1.WINDOW_DATA: "window_data_param",
}
_V2_DATA_PARAMS = {
    "Data": "data_param",
    "ImageData": "image_data_param",
    "WindowData": "window_data_param",
}
# Parameter messages that V1LayerParameter and LayerParameter share by name.
_V1_SHARED_PARAMS = tuple(
    f.name
    for f in V1.DESCRIPTOR.fields
    if f.name.endswith("_param") and f.name in caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
)


# --------------------------------------------------------------------------------------------
# Needs-upgrade checks


def _net_needs_v0(net: caffe_pb2.NetParameter) -> bool:
    return any(layer.HasField("layer") for layer in net.layers)


def _net_needs_data_upgrade(net: caffe_pb2.NetParameter) -> bool:
    for layer in net.layers:
        name = _V1_DATA_PARAMS.get(layer.type)
        if name and any(getattr(layer, name).HasField(f) for f in _TRANSFORM_FIELDS):
            return True
    for layer in net.layer:
        name = _V2_DATA_PARAMS.get(layer.type)
        if name and layer.HasField(name):
            if any(getattr(layer, name).HasField(f) for f in _TRANSFORM_FIELDS):
                return True
    return False


def _net_needs_batchnorm_upgrade(net: caffe_pb2.NetParameter) -> bool:
    return any(layer.type == "BatchNorm" and len(layer.param) == 3 for layer in net.layer)


def net_needs_upgrade(net: caffe_pb2.NetParameter) -> bool:
    """True when `net` uses any old format feature that `upgrade_net` rewrites."""
    return (
        _net_needs_v0(net)
        or _net_needs_data_upgrade(net)
        or len(net.layers) > 0
        or len(net.input) > 0
        or len(net.input_dim) > 0
        or len(net.input_shape) > 0
        or _net_needs_batchnorm_upgrade(net)
    )


# --------------------------------------------------------------------------------------------
# V0 -> V1


def _layer_label(layer) -> str:
    return f'layer "{layer.name}"' if layer.name else "unnamed layer"


def _layer_error(reason: str, layer) -> FormatError:
    """A FormatError remembering the layer name, so text parsers can point at its line."""
    exc = FormatError(reason)
    exc.layer_name = layer.name or None
    return exc


def _upgrade_v0_padding(net: caffe_pb2.NetParameter) -> None:
    """Fold V0 `padding` layers into the conv/pool layer that consumes their output."""
    pads: dict[str, tuple[str, int]] = {}  # padding top -> (padding bottom, pad)
    kept = []
    for layer in net.layers:
        v0 = layer.layer
        if v0.type == "padding":
            if len(layer.bottom) != 1 or len(layer.top) != 1:
                raise _layer_error(
                    f"V0 padding {_layer_label(v0)} needs one bottom and one top", v0
                )
            pads[layer.top[0]] = (layer.bottom[0], v0.pad)
            continue
        for i, bottom in enumerate(layer.bottom):
            if bottom in pads:
                if v0.type not in ("conv", "pool"):
                    raise FormatError(
                        f"V0 padding feeds {_layer_label(v0)} of type {v0.type!r};"
                        " only conv and pool layers can absorb padding"
                    )
                source, pad = pads[bottom]
                layer.bottom[i] = source
                v0.pad = pad
        kept.append(layer)
    if len(kept) != len(net.layers):
        copies = [caffe_pb2.V1LayerParameter() for _ in kept]
        for dst, src in zip(copies, kept, strict=True):
            dst.CopyFrom(src)
        del net.layers[:]
        net.layers.extend(copies)


def _upgrade_v0_layer(v1: caffe_pb2.V1LayerParameter) -> None:
    """Rewrite one V1 wrapper holding a V0 `layer` into a plain V1 layer (in place)."""
    v0 = caffe_pb2.V0LayerParameter()
    v0.CopyFrom(v1.layer)
    v1.ClearField("layer")
    if v0.HasField("name"):
        v1.name = v0.name
    kind = v0.type
    if kind not in V0_TYPE_NAMES:
        raise _layer_error(f"unknown V0 layer type {kind!r} in {_layer_label(v0)}", v0)
    v1.type = V1.LayerType.Value(V0_TYPE_NAMES[kind])
    v1.blobs.extend(v0.blobs)
    v1.blobs_lr.extend(v0.blobs_lr)
    v1.weight_decay.extend(v0.weight_decay)

    def unsupported(field: str) -> FormatError:
        return FormatError(f"V0 field {field!r} is not valid for {kind!r} in {_layer_label(v0)}")

    if v0.HasField("num_output"):
        if kind == "conv":
            v1.convolution_param.num_output = v0.num_output
        elif kind == "innerproduct":
            v1.inner_product_param.num_output = v0.num_output
        else:
            raise unsupported("num_output")
    for field, target in (
        ("biasterm", "bias_term"),
        ("weight_filler", None),
        ("bias_filler", None),
    ):
        if not v0.HasField(field):
            continue
        if kind == "conv":
            param = v1.convolution_param
        elif kind == "innerproduct":
            param = v1.inner_product_param
        else:
            raise unsupported(field)
        if target:
            setattr(param, target, getattr(v0, field))
        else:
            getattr(param, field).CopyFrom(getattr(v0, field))
    for field, target in (("pad", "pad"), ("kernelsize", "kernel_size"), ("stride", "stride")):
        if not v0.HasField(field):
            continue
        value = getattr(v0, field)
        if kind == "conv":
            getattr(v1.convolution_param, target).append(value)
        elif kind == "pool":
            setattr(v1.pooling_param, target, value)
        else:
            raise unsupported(field)
    if v0.HasField("group"):
        if kind != "conv":
            raise unsupported("group")
        v1.convolution_param.group = v0.group
    if v0.HasField("pool"):
        if kind != "pool":
            raise unsupported("pool")
        v1.pooling_param.pool = v0.pool
    if v0.HasField("dropout_ratio"):
        if kind != "dropout":
            raise unsupported("dropout_ratio")
        v1.dropout_param.dropout_ratio = v0.dropout_ratio
    for field in ("local_size", "alpha", "beta", "k"):
        if v0.HasField(field):
            if kind != "lrn":
                raise unsupported(field)
            setattr(v1.lrn_param, field, getattr(v0, field))
    data_params = {
        "data": "data_param",
        "hdf5_data": "hdf5_data_param",
        "images": "image_data_param",
        "window_data": "window_data_param",
    }
    for field, target in (("source", "source"), ("batchsize", "batch_size")):
        if v0.HasField(field):
            if kind not in data_params:
                raise unsupported(field)
            setattr(getattr(v1, data_params[kind]), target, getattr(v0, field))
    for field, target in (
        ("scale", "scale"),
        ("meanfile", "mean_file"),
        ("cropsize", "crop_size"),
        ("mirror", "mirror"),
    ):
        if v0.HasField(field):
            setattr(v1.transform_param, target, getattr(v0, field))
    if v0.HasField("rand_skip"):
        if kind == "data":
            v1.data_param.rand_skip = v0.rand_skip
        elif kind == "images":
            v1.image_data_param.rand_skip = v0.rand_skip
        else:
            raise unsupported("rand_skip")
    for field, target in (
        ("shuffle_images", "shuffle"),
        ("new_height", "new_height"),
        ("new_width", "new_width"),
    ):
        if v0.HasField(field):
            if kind != "images":
                raise unsupported(field)
            setattr(v1.image_data_param, target, getattr(v0, field))
    if v0.HasField("concat_dim"):
        if kind != "concat":
            raise unsupported("concat_dim")
        v1.concat_param.concat_dim = v0.concat_dim
    for field, target in (
        ("det_fg_threshold", "fg_threshold"),
        ("det_bg_threshold", "bg_threshold"),
        ("det_fg_fraction", "fg_fraction"),
        ("det_context_pad", "context_pad"),
        ("det_crop_mode", "crop_mode"),
    ):
        if v0.HasField(field):
            if kind != "window_data":
                raise unsupported(field)
            setattr(v1.window_data_param, target, getattr(v0, field))
    if v0.HasField("hdf5_output_param"):
        if kind != "hdf5_output":
            raise unsupported("hdf5_output_param")
        v1.hdf5_output_param.CopyFrom(v0.hdf5_output_param)


def _upgrade_v0(net: caffe_pb2.NetParameter) -> None:
    _upgrade_v0_padding(net)
    for layer in net.layers:
        if layer.HasField("layer"):
            _upgrade_v0_layer(layer)


# --------------------------------------------------------------------------------------------
# Data transformation, V1 -> V2, inputs, BatchNorm


def _move_transform_fields(param, transform: caffe_pb2.TransformationParameter) -> None:
    for field in _TRANSFORM_FIELDS:
        if param.HasField(field):
            setattr(transform, field, getattr(param, field))
            param.ClearField(field)


def _upgrade_data_transformation(net: caffe_pb2.NetParameter) -> None:
    # As Caffe: every V1 data layer gets (possibly empty) data and transform params.
    for layer in net.layers:
        name = _V1_DATA_PARAMS.get(layer.type)
        if name:
            getattr(layer, name).SetInParent()
            layer.transform_param.SetInParent()
            _move_transform_fields(getattr(layer, name), layer.transform_param)
    # Our extension: V2 data layers that still carry the deprecated fields.
    for layer in net.layer:
        name = _V2_DATA_PARAMS.get(layer.type)
        if name and layer.HasField(name):
            param = getattr(layer, name)
            if any(param.HasField(f) for f in _TRANSFORM_FIELDS):
                _move_transform_fields(param, layer.transform_param)


def _v1_type_name(v1: caffe_pb2.V1LayerParameter) -> str:
    if not v1.HasField("type") or v1.type == V1.NONE:
        raise _layer_error(f"{_layer_label(v1)} has no layer type", v1)
    enum_name = V1.LayerType.Name(v1.type)
    if enum_name not in V1_TYPE_NAMES:
        raise _layer_error(f"unknown V1 layer type {enum_name} in {_layer_label(v1)}", v1)
    return V1_TYPE_NAMES[enum_name]


def upgrade_v1_layer(v1: caffe_pb2.V1LayerParameter) -> caffe_pb2.LayerParameter:
    """Convert one V1 `layers` entry into a V2 `layer`."""
    if v1.HasField("layer"):
        raise FormatError(f"{_layer_label(v1)} still holds a V0 layer; upgrade V0 first")
    layer = caffe_pb2.LayerParameter()
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    layer.type = _v1_type_name(v1)
    layer.blobs.extend(v1.blobs)

    def param(i: int) -> caffe_pb2.ParamSpec:
        while len(layer.param) <= i:
            layer.param.add()
        return layer.param[i]

    for i, name in enumerate(v1.param):
        param(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        param(i).share_mode = mode
    for i, lr in enumerate(v1.blobs_lr):
        param(i).lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        param(i).decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)
    for name in _V1_SHARED_PARAMS:
        if v1.HasField(name):
            getattr(layer, name).CopyFrom(getattr(v1, name))
    return layer


def _upgrade_v1(net: caffe_pb2.NetParameter) -> None:
    if len(net.layer) > 0:
        raise FormatError("net mixes V1 'layers' with V2 'layer' fields; use one format")
    new_layers = [upgrade_v1_layer(v1) for v1 in net.layers]
    net.ClearField("layers")
    net.layer.extend(new_layers)


def _upgrade_input(net: caffe_pb2.NetParameter) -> None:
    has_shape = len(net.input_shape) > 0
    has_dim = len(net.input_dim) > 0
    if has_shape or has_dim:
        n = len(net.input)
        if has_shape and len(net.input_shape) != n:
            raise FormatError(f"net has {n} inputs but {len(net.input_shape)} input_shape")
        if has_dim and not has_shape and len(net.input_dim) != 4 * n:
            raise FormatError(
                f"net has {n} inputs but {len(net.input_dim)} input_dim (4 per input needed)"
            )
        layer = caffe_pb2.LayerParameter(name="input", type="Input")
        for i, name in enumerate(net.input):
            layer.top.append(name)
            shape = layer.input_param.shape.add()
            if has_shape:
                shape.CopyFrom(net.input_shape[i])
            else:
                shape.dim.extend(net.input_dim[4 * i : 4 * i + 4])
        rest = list(net.layer)
        del net.layer[:]
        net.layer.append(layer)
        net.layer.extend(rest)
    elif len(net.input) > 0:
        raise FormatError("net lists 'input' blobs without input_shape or input_dim")
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")


def _upgrade_batchnorm(net: caffe_pb2.NetParameter) -> None:
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3:
            layer.ClearField("param")


def upgrade_net(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    """Return a V2 copy of `net` (the argument is not modified). Errors: `FormatError`."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    if _net_needs_v0(out):
        _upgrade_v0(out)
    if _net_needs_data_upgrade(out):
        _upgrade_data_transformation(out)
    if len(out.layers) > 0:
        _upgrade_v1(out)
    if len(out.input) or len(out.input_dim) or len(out.input_shape):
        _upgrade_input(out)
    if _net_needs_batchnorm_upgrade(out):
        _upgrade_batchnorm(out)
    return out


def upgrade_solver(solver: caffe_pb2.SolverParameter) -> caffe_pb2.SolverParameter:
    """Return a copy of `solver` with `solver_type: ENUM` turned into `type: "Name"`."""
    out = caffe_pb2.SolverParameter()
    out.CopyFrom(solver)
    if out.HasField("solver_type"):
        if out.HasField("type"):
            raise FormatError(
                "solver sets both the old 'solver_type' enum and the new 'type' string"
            )
        enum_name = caffe_pb2.SolverParameter.SolverType.Name(out.solver_type)
        out.type = SOLVER_TYPE_NAMES[enum_name]
        out.ClearField("solver_type")
    return out
