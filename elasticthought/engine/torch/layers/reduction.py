"""Reduction: SUM, ASUM, SUMSQ or MEAN over all axes from `axis` on, times `coeff`."""

from __future__ import annotations

import torch

from elasticthought.engine.torch.layer import Layer, canonical_axis, register

SUM, ASUM, SUMSQ, MEAN = 1, 2, 3, 4


@register
class Reduction(Layer):
    """reduction_param: operation (default SUM), axis (default 0: the top is a scalar), coeff
    (default 1). The top keeps the axes before `axis`; MEAN divides by the reduced count.
    Gradients: SUM/MEAN coeff, ASUM coeff * sign(x) (0 at 0), SUMSQ 2 coeff x."""

    type_name = "Reduction"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.reduction_param
        self.op = int(p.operation)
        if self.op not in (SUM, ASUM, SUMSQ, MEAN):
            raise self.error(f"Unknown reduction op: {self.op}")
        self.axis_param = int(p.axis)
        self.coeff = float(p.coeff)
        canonical_axis(self.axis_param, bottoms[0].dim())

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        axis = canonical_axis(self.axis_param, x.dim())
        rows = x.reshape(*x.shape[:axis], -1)
        if self.op == ASUM:
            rows = rows.abs()
        elif self.op == SUMSQ:
            rows = rows * rows
        y = rows.sum(-1)
        coeff = self.coeff / rows.shape[-1] if self.op == MEAN else self.coeff
        if coeff != 1.0:
            y = y * coeff
        return [y]
