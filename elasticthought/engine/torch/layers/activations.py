"""Element-wise layers added for issue 18: Clip, Swish, Threshold."""

from __future__ import annotations

import torch

from elasticthought.engine.torch.layer import Layer, register


@register
class Clip(Layer):
    """min(max(x, clip_param.min), clip_param.max) (both required); the gradient passes where
    min <= x <= max, bounds included."""

    type_name = "Clip"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.clip_param
        if not (self.param.HasField("clip_param") and p.HasField("min") and p.HasField("max")):
            raise self.error("clip_param needs both min and max")
        self.low, self.high = float(p.min), float(p.max)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.clamp(bottoms[0], self.low, self.high)]


@register
class Swish(Layer):
    """x * sigmoid(beta * x) (swish_param.beta, default 1)."""

    type_name = "Swish"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        self.beta = float(self.param.swish_param.beta)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        return [x * torch.sigmoid(x * self.beta if self.beta != 1.0 else x)]


@register
class Threshold(Layer):
    """1 where x > threshold_param.threshold (default 0), else 0. Caffe has no backward for it
    (a net that needs one aborts there); here its top carries no gradient."""

    type_name = "Threshold"
    num_bottoms = (1, 1)
    num_tops = (1, 1)
    has_backward = False

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        self.threshold = float(self.param.threshold_param.threshold)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0].detach()
        return [(x > self.threshold).to(x.dtype)]
