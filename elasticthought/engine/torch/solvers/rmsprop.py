"""RMSProp: `h = d h + (1 - d) g^2; update = lr * g / (sqrt(h) + delta)`."""

from __future__ import annotations

import numpy as np
import torch

from elasticthought.engine.torch.solvers.base import UpdateRule, f32


class RMSProp(UpdateRule):
    type_name = "RMSProp"

    def check(self) -> None:
        if self.param.momentum != 0:
            raise ValueError("Momentum cannot be used with RMSProp (use rms_decay).")
        if not 0 <= self.param.rms_decay <= 1:
            raise ValueError("rms_decay should lie between 0 and 1.")

    def compute(self, i: int, diff: torch.Tensor, local_rate: float, it: int) -> None:
        decay = f32(self.param.rms_decay)
        h = self.history[i]
        h.mul_(decay).add_(diff * diff, alpha=float(np.float32(1) - np.float32(decay)))
        denom = h.sqrt().add_(f32(self.param.delta))
        diff.div_(denom).mul_(local_rate)
