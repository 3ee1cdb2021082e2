"""SGD with momentum, the learning rate folded into the history (`h = m h + lr g; w -= h`)."""

from __future__ import annotations

import torch

from elasticthought.engine.torch.solvers.base import UpdateRule, f32


class SGD(UpdateRule):
    type_name = "SGD"

    def compute(self, i: int, diff: torch.Tensor, local_rate: float, it: int) -> None:
        h = self.history[i]
        h.mul_(f32(self.param.momentum)).add_(diff, alpha=local_rate)
        diff.copy_(h)
