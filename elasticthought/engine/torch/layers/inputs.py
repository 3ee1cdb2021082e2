"""Input (blobs the caller fills) and DummyData (blobs filled by fillers)."""

from __future__ import annotations

import torch

from elasticthought.engine.torch.fillers import fill
from elasticthought.engine.torch.layer import Layer, register


def _shapes(layer: Layer, shapes: list[list[int]], ntop: int, what: str) -> list[list[int]]:
    if len(shapes) == 1:
        return shapes * ntop
    if len(shapes) != ntop:
        raise layer.error(f"{len(shapes)} {what} for {ntop} tops (give 1 or one per top)")
    return shapes


@register
class Input(Layer):
    """Tops of the shapes in input_param, zero-filled; the net keeps whatever is written into
    them (`net.blobs[name].data[...] = x` or `net.forward(name=x)`)."""

    type_name = "Input"
    num_bottoms = (0, 0)
    num_tops = (1, None)
    is_data = True
    has_backward = False
    keeps_tops = True

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        shapes = [[int(d) for d in s.dim] for s in self.param.input_param.shape]
        self.shapes = _shapes(self, shapes, len(self.param.top), "input shapes")
        if any(d < 0 for s in self.shapes for d in s):
            raise self.error("input dims must be non-negative")

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.zeros(s, device=self.device) for s in self.shapes]


@register
class DummyData(Layer):
    """Tops filled by data_filler (one for all tops or one per top; default constant 0)."""

    type_name = "DummyData"
    num_bottoms = (0, 0)
    num_tops = (1, None)
    is_data = True
    has_backward = False

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.dummy_data_param
        ntop = len(self.param.top)
        if len(p.shape):
            shapes = [[int(d) for d in s.dim] for s in p.shape]
        else:
            legacy = [p.num, p.channels, p.height, p.width]
            n = max(len(v) for v in legacy)
            if any(len(v) not in (n,) for v in legacy):
                raise self.error("num, channels, height and width need the same length")
            shapes = [[int(v[i]) for v in legacy] for i in range(n)]
        self.shapes = _shapes(self, shapes, ntop, "shapes")
        fillers = list(p.data_filler)
        if not fillers:
            fillers = [None]
        self.fillers = _shapes(self, fillers, ntop, "data_filler")
        self._const = [
            fill(s, f).to(self.device) if f is None or f.type == "constant" else None
            for s, f in zip(self.shapes, self.fillers, strict=True)
        ]

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return [
            c.clone() if c is not None else fill(s, f).to(self.device)
            for c, s, f in zip(self._const, self.shapes, self.fillers, strict=True)
        ]
