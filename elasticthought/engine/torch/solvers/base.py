"""The base class of the update rules (Caffe's `ComputeUpdateValue` step)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch


def f32(value: float) -> float:
    """`value` rounded to float32, as Caffe holds solver constants (Dtype)."""
    return float(np.float32(value))


class UpdateRule:
    """Turns `diff` (already clipped, normalized and regularized) into the update, in place.

    `history` holds `history_sets` x len(params) tensors shaped like the params, zero at start.
    """

    type_name: ClassVar[str] = ""
    history_sets: ClassVar[int] = 1

    def __init__(self, param: Any, params: list[torch.Tensor]) -> None:
        self.param = param
        self.count = len(params)
        self.history: list[torch.Tensor] = [
            torch.zeros_like(p) for _ in range(self.history_sets) for p in params
        ]
        self.check()

    def check(self) -> None:
        """Validate the solver fields this rule uses (raise ValueError with the reason)."""

    def compute(self, i: int, diff: torch.Tensor, local_rate: float, it: int) -> None:
        """Replace `diff` of param `i` by the value to subtract; `it` is the 0-based iteration."""
        raise NotImplementedError
