"""Adam as Caffe computes it: `t = iter + 1`, delta added to the uncorrected sqrt(v).

History set 0 is m, set 1 is v.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from elasticthought.engine.torch.solvers.base import UpdateRule, f32


class Adam(UpdateRule):
    type_name = "Adam"
    history_sets = 2

    def compute(self, i: int, diff: torch.Tensor, local_rate: float, it: int) -> None:
        beta1 = np.float32(self.param.momentum)
        beta2 = np.float32(self.param.momentum2)
        t = it + 1
        correction = np.float32(math.sqrt(1.0 - float(beta2) ** t) / (1.0 - float(beta1) ** t))
        m = self.history[i]
        v = self.history[self.count + i]
        m.mul_(float(beta1)).add_(diff, alpha=float(np.float32(1) - beta1))
        v.mul_(float(beta2)).add_(diff * diff, alpha=float(np.float32(1) - beta2))
        denom = v.sqrt().add_(f32(self.param.delta))
        torch.div(m, denom, out=diff)
        diff.mul_(float(np.float32(local_rate) * correction))
