"""Caffe's weight fillers (`FillerParameter.type`): constant, uniform, gaussian (with sparse),
xavier, msra, bilinear, positive_unitball, with `variance_norm` for xavier and msra.

Values are drawn on the CPU with torch's global generator (seeded by the solver's
`random_seed`), in float32, then moved to the target device, so a seed gives the same weights on
every device. The distributions are Caffe's; the individual draws are not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

FAN_IN, FAN_OUT, AVERAGE = 0, 1, 2


class FillerError(ValueError):
    """A filler that cannot fill a blob of this shape, or an unknown filler type."""


def _fans(shape: Sequence[int]) -> tuple[int, int]:
    """Caffe's fan_in = count / shape[0], fan_out = count / shape[1] (count for 1-D blobs)."""
    count = math.prod(shape)
    if not shape or shape[0] == 0:
        return max(count, 1), max(count, 1)
    fan_in = count // shape[0]
    fan_out = count // shape[1] if len(shape) > 1 and shape[1] else count
    return fan_in, fan_out


def _scale_n(shape: Sequence[int], variance_norm: int) -> float:
    fan_in, fan_out = _fans(shape)
    if variance_norm == FAN_OUT:
        return float(fan_out)
    if variance_norm == AVERAGE:
        return (fan_in + fan_out) / 2.0
    return float(fan_in)


def _bilinear(shape: Sequence[int]) -> torch.Tensor:
    if len(shape) != 4 or shape[2] != shape[3]:
        raise FillerError(
            f"bilinear filler needs a 4-D blob with square kernels, got {list(shape)}"
        )
    k = shape[3]
    f = math.ceil(k / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    ramp = 1 - (torch.arange(k, dtype=torch.float64) / f - c).abs()
    kernel = (ramp[:, None] * ramp[None, :]).to(torch.float32)
    return kernel.expand(*shape).contiguous()


def fill(shape: Sequence[int], filler: Any | None) -> torch.Tensor:
    """A new float32 CPU tensor of `shape` filled as `filler` (a FillerParameter) says.

    `None` (no filler in the prototxt) means Caffe's default, constant 0.
    """
    shape = tuple(int(d) for d in shape)
    kind = filler.type if filler is not None else "constant"
    if kind == "constant":
        value = filler.value if filler is not None else 0.0
        return torch.full(shape, float(value), dtype=torch.float32)
    if kind == "uniform":
        return torch.empty(shape, dtype=torch.float32).uniform_(filler.min, filler.max)
    if kind == "gaussian":
        out = torch.empty(shape, dtype=torch.float32).normal_(filler.mean, filler.std)
        if filler.sparse >= 0:
            if len(shape) < 1 or shape[0] == 0:
                raise FillerError("sparse gaussian filler needs a blob with a first axis")
            prob = min(1.0, filler.sparse / float(shape[0]))
            out *= torch.empty(shape, dtype=torch.float32).bernoulli_(prob)
        return out
    if kind == "positive_unitball":
        out = torch.rand(shape, dtype=torch.float32)
        num = shape[0] if shape else 1
        rows = out.reshape(num, -1)
        rows /= rows.sum(dim=1, keepdim=True)
        return out
    if kind == "xavier":
        scale = math.sqrt(3.0 / _scale_n(shape, filler.variance_norm))
        return torch.empty(shape, dtype=torch.float32).uniform_(-scale, scale)
    if kind == "msra":
        std = math.sqrt(2.0 / _scale_n(shape, filler.variance_norm))
        return torch.empty(shape, dtype=torch.float32).normal_(0.0, std)
    if kind == "bilinear":
        return _bilinear(shape)
    raise FillerError(
        f"unknown filler type {kind!r}; supported: bilinear, constant, gaussian, msra, "
        "positive_unitball, uniform, xavier"
    )
