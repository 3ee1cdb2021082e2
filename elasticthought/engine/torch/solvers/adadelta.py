"""AdaDelta (Zeiler 2012) as Caffe computes it, with the learning rate applied last.

History set 0 is the running average of g^2, set 1 that of the update^2.
"""

from __future__ import annotations

import numpy as np
import torch

from elasticthought.engine.torch.solvers.base import UpdateRule, f32


class AdaDelta(UpdateRule):
    type_name = "AdaDelta"
    history_sets = 2

    def compute(self, i: int, diff: torch.Tensor, local_rate: float, it: int) -> None:
        momentum = f32(self.param.momentum)
        rest = float(np.float32(1) - np.float32(momentum))
        delta = f32(self.param.delta)
        g2 = self.history[i]
        u2 = self.history[self.count + i]
        g2.mul_(momentum).add_(diff * diff, alpha=rest)
        ratio = (u2 + delta).div_(g2 + delta).sqrt_()
        diff.mul_(ratio)
        u2.mul_(momentum).add_(diff * diff, alpha=rest)
        diff.mul_(local_rate)
