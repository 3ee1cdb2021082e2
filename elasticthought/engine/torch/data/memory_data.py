"""The `MemoryData` layer: batches from arrays given with `set_input_arrays` (pycaffe's API).

As in Caffe the arrays are used as they are (no transform_param), their count must be a multiple
of batch_size, and batches follow one another, wrapping at the end.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from elasticthought.engine.torch.data.batches import setup_tops
from elasticthought.engine.torch.layer import Layer, register


class MemoryDataError(ValueError):
    """Arrays that do not fit the layer, or a forward before any arrays were given."""


@register
class MemoryDataLayer(Layer):
    """Caffe's `MemoryData` layer (tops: data and label)."""

    type_name = "MemoryData"
    is_data = True
    has_backward = False

    def __init__(self, param: Any, phase: str, device: torch.device) -> None:
        super().__init__(param, phase, device)
        p = param.memory_data_param
        self.batch_size = int(p.batch_size)
        self.shape = (int(p.channels), int(p.height), int(p.width))
        if self.batch_size <= 0 or min(self.shape) <= 0:
            raise MemoryDataError(
                f"layer {self.name}: batch_size, channels, height and width must be positive"
            )
        self.top_shape = (self.batch_size, *self.shape)
        self.with_label = len(param.top) > 1
        self.data: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.pos = 0

    def set_input_arrays(self, data: np.ndarray, labels: np.ndarray) -> None:
        """Use `data` (N x C x H x W) and `labels` (N) from now on, starting at item 0."""
        data = np.asarray(data, dtype=np.float32)
        labels = np.asarray(labels, dtype=np.float32).reshape(-1)
        if data.ndim != 4 or tuple(data.shape[1:]) != self.shape:
            raise MemoryDataError(
                f"layer {self.name}: data must be N x {' x '.join(map(str, self.shape))}, "
                f"got {tuple(data.shape)}"
            )
        if labels.shape[0] != data.shape[0]:
            raise MemoryDataError(
                f"layer {self.name}: {data.shape[0]} images but {labels.shape[0]} labels"
            )
        if data.shape[0] % self.batch_size:
            raise MemoryDataError(
                f"layer {self.name}: the number of images ({data.shape[0]}) must be a "
                f"multiple of batch_size ({self.batch_size})"
            )
        self.data = torch.from_numpy(np.ascontiguousarray(data)).to(self.device)
        self.labels = torch.from_numpy(labels).to(self.device)
        self.pos = 0

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.in_setup:  # shapes only: no arrays yet
            return setup_tops(self.top_shape, self.device, self.with_label)
        if self.data is None or self.labels is None:
            raise MemoryDataError(f"layer {self.name}: call set_input_arrays before forward")
        start, stop = self.pos, self.pos + self.batch_size
        self.pos = stop % self.data.shape[0]
        tops = [self.data[start:stop]]
        if self.with_label:
            tops.append(self.labels[start:stop])
        return tops


def set_input_arrays(net: Any, data: np.ndarray, labels: np.ndarray) -> None:
    """pycaffe's `net.set_input_arrays`: feed the net's first MemoryData layer.

    The net keeps the tops a data layer gave during setup as its first batch; for MemoryData
    those are placeholders, so they are dropped here and the next forward reads `data`."""
    for index, layer in enumerate(getattr(net, "layers", [])):
        if isinstance(layer, MemoryDataLayer):
            layer.set_input_arrays(data, labels)
            pending = getattr(net, "_pending", None)
            if pending:
                pending.pop(index, None)
            return
    raise MemoryDataError("the net has no MemoryData layer")
