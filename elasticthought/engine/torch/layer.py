"""The base class and registry of the torch engine's layers, one class per Caffe layer type.

A layer is built from its `caffe.LayerParameter`, the net's phase ("TRAIN" or "TEST") and a torch
device. `setup(bottoms)` runs once with the first bottom tensors and creates the parameter blobs
in `self.blobs` (Caffe's shapes and order, so caffemodels load directly). `forward(bottoms)`
returns the top tensors and is differentiable with torch autograd; layers whose Caffe backward
is not the autograd one use a custom `torch.autograd.Function`. Data layers have no bottoms and
return the next batch from `forward`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

LAYERS: dict[str, type[Layer]] = {}


class UnsupportedLayer(ValueError):
    """A net names a layer type that the engine does not implement."""


def register(cls: type[Layer]) -> type[Layer]:
    """Class decorator: add a layer class to the registry under its `type_name`."""
    LAYERS[cls.type_name] = cls
    return cls


def layer_class(type_name: str) -> type[Layer]:
    """The class for a Caffe type string, or `UnsupportedLayer` naming what is supported."""
    try:
        return LAYERS[type_name]
    except KeyError:
        supported = ", ".join(sorted(LAYERS))
        raise UnsupportedLayer(
            f"unsupported layer type {type_name!r}; supported: {supported}"
        ) from None


class Layer:
    """One Caffe layer. Subclasses set `type_name` and override `setup`/`forward`."""

    type_name: ClassVar[str] = ""
    #: True for layers that produce data with no bottoms (Data, ImageData, Input, ...).
    is_data: ClassVar[bool] = False

    def __init__(self, param: Any, phase: str, device: torch.device) -> None:
        self.param = param
        self.name: str = param.name
        self.phase = phase
        self.device = device
        self.blobs: list[torch.Tensor] = []

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        """Create parameter blobs from the first bottoms' shapes (default: none)."""

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (database handles, prefetch threads)."""
