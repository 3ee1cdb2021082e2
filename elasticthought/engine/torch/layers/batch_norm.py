"""BatchNorm: normalization without the affine part, with Caffe's three blobs.

Blobs: mean sum (C), variance sum (C), scale factor (1). In TRAIN (use_global_stats false) each
forward normalizes with the batch mean and biased variance and updates the blobs:
`b0 = maf*b0 + mean`, `b1 = maf*b1 + m/(m-1) * var`, `b2 = maf*b2 + 1`. With global statistics
(the TEST default) it uses `b0/b2` and `b1/b2`. The blobs are not learned by gradients.
"""

from __future__ import annotations

import torch

from elasticthought.engine.torch.layer import Layer, register


@register
class BatchNorm(Layer):
    type_name = "BatchNorm"
    num_bottoms = (1, 1)
    num_tops = (1, 1)
    grad_params = False

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.batch_norm_param
        x = bottoms[0]
        self.use_global = (
            bool(p.use_global_stats) if p.HasField("use_global_stats") else self.phase == "TEST"
        )
        self.maf = float(p.moving_average_fraction)
        self.eps = float(p.eps)
        c = 1 if x.dim() == 1 else int(x.shape[1])
        for i, lr in enumerate(ps.lr_mult for ps in self.param.param):
            if i < 3 and lr != 0:
                raise self.error(
                    "cannot configure batch normalization statistics as layer "
                    "parameters (lr_mult must be 0)"
                )
        self.blobs = [
            torch.zeros(c, device=self.device),
            torch.zeros(c, device=self.device),
            torch.zeros(1, device=self.device),
        ]

    def _view(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.reshape(1, -1, *([1] * (x.dim() - 2))) if x.dim() > 1 else v

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        b0, b1, b2 = self.blobs
        if self.use_global:
            factor = b2.detach()
            inv = torch.where(factor == 0, torch.zeros_like(factor), 1.0 / factor)
            mean = b0.detach() * inv
            var = b1.detach() * inv
            return [(x - self._view(mean, x)) / self._view(torch.sqrt(var + self.eps), x)]
        dims = [0, *range(2, x.dim())] if x.dim() > 1 else [0]
        mean = x.mean(dim=dims)
        centered = x - self._view(mean, x)
        var = (centered * centered).mean(dim=dims)
        if not self.in_setup:
            m = x.numel() // (1 if x.dim() == 1 else x.shape[1])
            correction = m / (m - 1) if m > 1 else 1.0
            with torch.no_grad():
                b2.mul_(self.maf).add_(1.0)
                b0.mul_(self.maf).add_(mean.detach())
                b1.mul_(self.maf).add_(var.detach(), alpha=correction)
        return [centered / self._view(torch.sqrt(var + self.eps), x)]
