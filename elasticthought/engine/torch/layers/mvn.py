"""MVN: mean (and variance) normalization per channel or per sample.

Rows are (num * channels) of height*width values (Caffe's legacy 4-axis view; `across_channels`
makes rows of channels*height*width per sample). y = x - mean(x) and, with
`normalize_variance` (default), y / (sqrt(mean(y^2)) + eps) (eps default 1e-9, added to the
standard deviation). Caffe's backward treats the divisor as constant in one term:
dx = (dy - mean(dy) - y * mean(y * dy)) / (std + eps), reproduced here.
"""

from __future__ import annotations

import torch

from elasticthought.engine.torch.layer import Layer, register


def _legacy(shape: torch.Size, axis: int) -> int:
    return int(shape[axis]) if len(shape) > axis else 1


class _MVNFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rows, eps):
        flat = x.reshape(rows, -1)
        centred = flat - flat.mean(1, keepdim=True)
        std = torch.sqrt((centred * centred).mean(1, keepdim=True)) + eps
        y = centred / std
        ctx.save_for_backward(y, std)
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx, dy):
        y, std = ctx.saved_tensors
        g = dy.reshape(y.shape)
        dx = (g - g.mean(1, keepdim=True) - y * (y * g).mean(1, keepdim=True)) / std
        return dx.reshape(dy.shape), None, None


@register
class MVN(Layer):
    """mvn_param: normalize_variance (default true), across_channels (default false), eps
    (default 1e-9)."""

    type_name = "MVN"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.mvn_param
        self.normalize_variance = bool(p.normalize_variance)
        self.across_channels = bool(p.across_channels)
        self.eps = float(p.eps)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        rows = _legacy(x.shape, 0) * (1 if self.across_channels else _legacy(x.shape, 1))
        if x.numel() == 0:
            return [x.view_as(x)]
        if self.normalize_variance:
            return [_MVNFn.apply(x, rows, self.eps)]
        flat = x.reshape(rows, -1)
        return [(flat - flat.mean(1, keepdim=True)).reshape(x.shape)]
