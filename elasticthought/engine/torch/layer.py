"""The base class and registry of the torch engine's layers, one class per Caffe layer type.

A layer is built from its `caffe.LayerParameter`, the net's phase ("TRAIN" or "TEST") and a torch
device. `setup(bottoms)` runs once with the first bottom tensors and creates the parameter blobs
in `self.blobs` (Caffe's shapes and order, so caffemodels load directly). `forward(bottoms)`
returns the top tensors and is differentiable with torch autograd; layers whose Caffe backward
is not the autograd one use a custom `torch.autograd.Function`. Data layers have no bottoms and
return the next batch from `forward`.

Extensions used by `Net` (all optional for subclasses):

- `self.blobs` may be replaced by the net after `setup` (parameter sharing), so `forward` must
  read parameters from `self.blobs` every time rather than keep its own references.
- `is_loss`: Caffe's LossLayer (top 0 gets loss_weight 1 unless the prototxt says otherwise).
- `has_backward`: False for layers Caffe cannot backpropagate through (Accuracy, ArgMax, data);
  the net detaches their tops.
- `grad_params`: False when the parameter blobs are not learned by gradients (BatchNorm's
  statistics, updated by `forward` itself).
- `keeps_tops`: the net calls `forward` once, while setting up, to create the tops; after that
  the top blobs keep what is written into them (Input: `net.blobs['data'].data[...] = x`).
- `num_bottoms` / `num_tops`: Caffe's Exact/Min/MaxBottomBlobs checks, done by the net.
- `allow_force_backward(i)`: Caffe's AllowForceBackward (loss layers: not to the label).
- `self.in_setup` is True while the net runs its one shape-finding forward pass at construction
  (BatchNorm does not update its statistics then). Data layers are called once during that pass;
  the net keeps that first batch and hands it out as the first real forward's tops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch

LAYERS: dict[str, type[Layer]] = {}


class UnsupportedLayer(ValueError):
    """A net names a layer type that the engine does not implement."""


class LayerError(ValueError):
    """A layer's parameters or bottom shapes are invalid (Caffe would fail a CHECK)."""


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: add a layer class to the registry under its `type_name`."""
    LAYERS[cls.type_name] = cls
    return cls


#: what to use instead of layer types of Caffe forks that BVLC Caffe does not have
ALTERNATIVES: dict[str, str] = {
    "ConvolutionDepthwise": "Convolution",
    "DepthwiseConvolution": "Convolution",
    "BN": "BatchNorm",
    "Upsample": "Deconvolution",
    "Interp": "Deconvolution",
    "Normalize": "MVN",
    "ShuffleChannel": "Reshape",
    "Permute": "Reshape",
    "SoftmaxLoss": "SoftmaxWithLoss",
    "TripletLoss": "ContrastiveLoss",
    "L2Normalize": "MVN",
    "AnnotatedData": "Data",
    "VideoData": "ImageData",
}
#: types of Caffe forks with no reasonable stand-in (no similar-name guess is offered)
NO_ALTERNATIVE = {"PriorBox", "DetectionOutput", "MultiBoxLoss", "ROIPooling", "Proposal"}


#: types the engine implements but refuses unless the process opts in (why, and how)
OPT_IN: dict[str, str] = {
    "Python": "Python layers run arbitrary user code and are refused here; run the net with "
    "`elasticthought train|test --allow-python-layers` on a machine you trust",
}


def nearest_layer(type_name: str) -> str | None:
    """The supported layer type closest to `type_name`: a known alternative for a fork's type,
    the same name in another case, else the most similar name."""
    import difflib

    known = ALTERNATIVES.get(type_name)
    if known in LAYERS:
        return known
    if type_name in NO_ALTERNATIVE:
        return None
    lower = {name.lower(): name for name in LAYERS}
    if type_name.lower() in lower:
        return lower[type_name.lower()]
    close = difflib.get_close_matches(type_name.lower(), list(lower), n=1, cutoff=0.5)
    return lower[close[0]] if close else None


def layer_class(type_name: str) -> type[Layer]:
    """The class for a Caffe type string, or `UnsupportedLayer` naming the nearest supported
    type and all of them."""
    try:
        return LAYERS[type_name]
    except KeyError:
        if type_name in OPT_IN:
            raise UnsupportedLayer(f"layer type {type_name!r}: {OPT_IN[type_name]}") from None
        supported = ", ".join(sorted(LAYERS))
        nearest = nearest_layer(type_name)
        hint = f"; nearest supported: {nearest!r}" if nearest else ""
        raise UnsupportedLayer(
            f"unsupported layer type {type_name!r}{hint}; supported: {supported}"
        ) from None


def canonical_axis(axis: int, ndim: int, what: str = "axis") -> int:
    """Caffe's CanonicalAxisIndex: negative axes count from the end; out of range is an error."""
    if not -ndim <= axis < max(ndim, 1):
        raise LayerError(f"{what} {axis} out of range for a {ndim}-axis blob")
    return axis + ndim if axis < 0 else axis


class Layer:
    """One Caffe layer. Subclasses set `type_name` and override `setup`/`forward`."""

    type_name: ClassVar[str] = ""
    #: True for layers that produce data with no bottoms (Data, ImageData, Input, ...).
    is_data: ClassVar[bool] = False
    is_loss: ClassVar[bool] = False
    has_backward: ClassVar[bool] = True
    grad_params: ClassVar[bool] = True
    keeps_tops: ClassVar[bool] = False
    #: allowed (min, max) numbers of bottoms and tops (max None: unbounded); None: unchecked
    num_bottoms: ClassVar[tuple[int, int | None] | None] = None
    num_tops: ClassVar[tuple[int, int | None] | None] = None

    def __init__(self, param: Any, phase: str, device: torch.device) -> None:
        self.param = param
        self.name: str = param.name
        self.phase = phase
        self.device = device
        self.blobs: list[torch.Tensor] = []
        self.in_setup = False

    @property
    def type(self) -> str:
        """The Caffe type string (pycaffe's `layer.type`)."""
        return self.type_name

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        """Create parameter blobs from the first bottoms' shapes (default: none)."""

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def allow_force_backward(self, bottom_index: int) -> bool:
        return not self.is_loss or bottom_index != 1

    def close(self) -> None:
        """Release resources (database handles, prefetch threads)."""

    # helpers for subclasses
    def error(self, reason: str) -> LayerError:
        return LayerError(f"layer {self.name!r} ({self.type_name}): {reason}")

    def make_blob(self, shape: Sequence[int], filler: Any | None) -> torch.Tensor:
        """A new float32 parameter tensor on the layer's device, filled per Caffe's filler."""
        from elasticthought.engine.torch.fillers import fill

        if self.device.type == "meta":  # shapes only (shapes.py): nothing to fill
            return torch.empty(tuple(int(d) for d in shape), device=self.device)
        return fill(shape, filler).to(self.device)

    def filler(self, msg: Any, field: str) -> Any | None:
        """`msg.field` when set in the prototxt, else None (Caffe's default constant 0)."""
        return getattr(msg, field) if msg.HasField(field) else None
