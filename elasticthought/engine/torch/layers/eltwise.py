"""Eltwise: SUM (with coefficients), PROD, MAX of bottoms of equal shape.

MAX follows Caffe's tie rule: between the first two bottoms a tie goes to the second, later
bottoms win only when strictly greater; the gradient goes to the winning bottom only.
"""

from __future__ import annotations

import torch

from elasticthought.engine.torch.layer import Layer, register

PROD, SUM, MAX = 0, 1, 2


@register
class Eltwise(Layer):
    type_name = "Eltwise"
    num_bottoms = (2, None)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.eltwise_param
        self.op = int(p.operation)
        self.coeff = [float(c) for c in p.coeff]
        if self.coeff and (self.op != SUM or len(self.coeff) != len(bottoms)):
            raise self.error("coeff is for SUM only, one per bottom")
        if len(bottoms) < 2:
            raise self.error("Eltwise needs at least 2 bottoms")
        for b in bottoms[1:]:
            if b.shape != bottoms[0].shape:
                raise self.error(f"bottom shapes differ: {[list(t.shape) for t in bottoms]}")

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.op == SUM:
            if not self.coeff or all(c == 1.0 for c in self.coeff):
                y = bottoms[0] + bottoms[1]
                for b in bottoms[2:]:
                    y = y + b
                return [y]
            y = bottoms[0] * self.coeff[0]
            for b, c in zip(bottoms[1:], self.coeff[1:], strict=True):
                y = y + b * c if c != 1.0 else y + b
            return [y]
        if self.op == PROD:
            y = bottoms[0] * bottoms[1]
            for b in bottoms[2:]:
                y = y * b
            return [y]
        a, b = bottoms[0], bottoms[1]
        y = torch.where(a > b, a, b)
        for b in bottoms[2:]:
            y = torch.where(b > y, b, y)
        return [y]
