"""AdaGrad: `h += g^2; update = lr * g / (sqrt(h) + delta)`."""

from __future__ import annotations

import torch

from elasticthought.engine.torch.solvers.base import UpdateRule, f32


class AdaGrad(UpdateRule):
    type_name = "AdaGrad"

    def check(self) -> None:
        if self.param.momentum != 0:
            raise ValueError("Momentum cannot be used with AdaGrad.")

    def compute(self, i: int, diff: torch.Tensor, local_rate: float, it: int) -> None:
        h = self.history[i]
        h.add_(diff * diff)
        denom = h.sqrt().add_(f32(self.param.delta))
        diff.div_(denom).mul_(local_rate)
