"""Blob shapes of a net without running it: every layer set up on torch's meta device, which
computes shapes and allocates nothing.

Data layers are built as usual but only to read their top shapes (the first record or image
gives C x H x W; no batch is loaded, no prefetch thread starts); their tops become meta tensors
of those shapes. A layer that cannot run on meta tensors (e.g. one that reads a value, as the
loss and accuracy layers do) leaves its tops unknown, and so do the layers fed by them: the
shapes found are a subset of the real ones, never more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from elasticthought.engine.torch.layer import layer_class

log = logging.getLogger(__name__)

META = torch.device("meta")


@dataclass
class NetShapes:
    """What shape inference found about one phase's net."""

    blobs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # by name (in-place: once)
    data_tops: set[str] = field(default_factory=set)  # tops of data layers (no diff in Caffe)
    params: dict[object, tuple[int, ...]] = field(default_factory=dict)  # shared ones once
    batch_size: int | None = None  # of the first data layer
    unknown: list[str] = field(default_factory=list)  # layers whose tops are unknown


def _data_tops(layer: Any, tops: int) -> list[torch.Tensor]:
    """Meta tops of a data layer that knows its batch's shape (`top_shape`)."""
    shape = tuple(int(d) for d in layer.top_shape)
    out = [torch.empty(shape, device=META)]
    if tops > 1:
        out.append(torch.empty(shape[:1], device=META))
    return out


def infer_shapes(net: Any, phase: str) -> NetShapes:
    """Shapes of the blobs and parameters of `net` (a NetParameter already filtered for
    `phase`), as far as they can be inferred without memory."""
    import elasticthought.engine.torch.data  # noqa: F401 - registers the data layers
    import elasticthought.engine.torch.layers  # noqa: F401 - registers the other layers
    from elasticthought.engine.torch.data.batches import shapes_only

    found = NetShapes()
    tensors: dict[str, torch.Tensor] = {}
    for lp in net.layer:
        name = f"{lp.name} ({lp.type})"
        if any(b not in tensors for b in lp.bottom):
            found.unknown.append(name)
            continue
        layer = None
        try:
            cls = layer_class(lp.type)
            with shapes_only(), torch.no_grad():
                layer = cls(lp, phase, META)
                bottoms = [tensors[b] for b in lp.bottom]
                if cls.is_data and hasattr(layer, "top_shape"):
                    tops = _data_tops(layer, len(lp.top))
                    if found.batch_size is None:
                        found.batch_size = int(layer.top_shape[0])
                else:
                    layer.setup(bottoms)
                    layer.in_setup = True
                    tops = layer.forward(bottoms)
        except Exception as exc:  # noqa: BLE001 - unknown shapes only make the bound lower
            log.debug("shape of %s unknown: %s", name, exc)
            found.unknown.append(name)
            continue
        finally:
            if layer is not None:
                try:
                    layer.close()
                except Exception:  # noqa: BLE001
                    pass
        for i, blob in enumerate(layer.blobs):
            shared = lp.param[i].name if i < len(lp.param) else ""
            found.params[shared or (lp.name, i)] = tuple(blob.shape)
        for top, tensor in zip(lp.top, tops, strict=False):
            tensors[top] = tensor
            found.blobs[top] = tuple(tensor.shape)
            if layer_class(lp.type).is_data:
                found.data_tops.add(top)
    return found
