"""Nesterov's accelerated gradient as Caffe computes it: step back, then over-step."""

from __future__ import annotations

import torch

from elasticthought.engine.torch.solvers.base import UpdateRule, f32


class Nesterov(UpdateRule):
    type_name = "Nesterov"

    def compute(self, i: int, diff: torch.Tensor, local_rate: float, it: int) -> None:
        momentum = f32(self.param.momentum)
        h = self.history[i]
        old = h.clone()
        h.mul_(momentum).add_(diff, alpha=local_rate)
        # update = (1 + m) * h_new - m * h_old
        torch.mul(h, f32(1.0 + momentum), out=diff)
        diff.add_(old, alpha=-momentum)
