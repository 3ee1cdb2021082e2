"""Softmax and SoftmaxWithLoss (ignore_label, normalization modes, optional prob top)."""

from __future__ import annotations

import math

import numpy as np
import torch

from elasticthought.engine.torch.layer import Layer, canonical_axis, register

FULL, VALID, BATCH_SIZE, NONE = 0, 1, 2, 3
FLT_MIN = float(np.finfo(np.float32).tiny)


@register
class Softmax(Layer):
    type_name = "Softmax"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        self.axis = canonical_axis(self.param.softmax_param.axis, bottoms[0].dim())

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.softmax(bottoms[0], self.axis)]


def normalization_mode(layer: Layer, default: int) -> int:
    """Caffe's rule: an explicit `normalization` wins, then the deprecated `normalize`."""
    lp = layer.param.loss_param
    if lp.HasField("normalization"):
        return int(lp.normalization)
    if lp.HasField("normalize"):
        return VALID if lp.normalize else BATCH_SIZE
    return default


def normalizer(mode: int, outer: int, inner: int, valid: int | None) -> float:
    """Caffe's LossLayer::GetNormalizer (at least 1)."""
    if mode == FULL:
        n = outer * inner
    elif mode == VALID:
        n = outer * inner if valid is None else valid
    elif mode == BATCH_SIZE:
        n = outer
    else:
        n = 1
    return max(1.0, float(n))


class _SoftmaxLossFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, label, axis, ignore, mode):
        shape = x.shape
        outer = math.prod(shape[:axis])
        inner = math.prod(shape[axis + 1 :])
        prob = torch.softmax(x, axis)
        p3 = prob.reshape(outer, shape[axis], inner)
        lab = label.reshape(outer, inner).to(torch.long)
        if ignore is not None:
            keep = lab != ignore
            safe = torch.where(keep, lab, torch.zeros_like(lab))
        else:
            keep, safe = None, lab
        lo, hi = (int(v) for v in torch.aminmax(safe))  # one device sync
        if lo < 0 or hi >= shape[axis]:
            raise ValueError(f"label out of range [0, {shape[axis]}) (min {lo}, max {hi})")
        picked = torch.gather(p3, 1, safe.unsqueeze(1)).squeeze(1)
        logs = torch.log(torch.clamp(picked, min=FLT_MIN))
        if keep is not None:
            logs = torch.where(keep, logs, torch.zeros_like(logs))
            valid = int(keep.sum())
        else:
            valid = None
        norm = normalizer(mode, outer, inner, valid)
        loss = -logs.sum() / norm
        ctx.save_for_backward(prob, safe, keep if keep is not None else safe)
        ctx.has_keep = keep is not None
        ctx.meta = (axis, norm, outer, inner)
        return loss, prob

    @staticmethod
    def backward(ctx, dloss, dprob):
        prob, safe, keep = ctx.saved_tensors
        axis, norm, outer, inner = ctx.meta
        grad = prob.clone()
        g3 = grad.view(outer, prob.shape[axis], inner)
        g3.scatter_add_(
            1, safe.unsqueeze(1), torch.full_like(safe, -1, dtype=grad.dtype).unsqueeze(1)
        )
        if ctx.has_keep:
            g3.mul_(keep.unsqueeze(1).to(grad.dtype))
        grad.mul_(dloss / norm)
        return grad, None, None, None, None


@register
class SoftmaxWithLoss(Layer):
    """-sum log(max(p[label], FLT_MIN)) / normalizer; gradient (p - onehot) * w / normalizer."""

    type_name = "SoftmaxWithLoss"
    num_bottoms = (2, 2)
    num_tops = (1, 2)
    is_loss = True

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        x, label = bottoms[0], bottoms[1]
        self.axis = canonical_axis(self.param.softmax_param.axis, x.dim())
        lp = self.param.loss_param
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(self, VALID)
        outer = math.prod(x.shape[: self.axis])
        inner = math.prod(x.shape[self.axis + 1 :])
        if label.numel() != outer * inner:
            raise self.error(
                f"label count ({label.numel()}) must equal outer*inner ({outer * inner}); "
                "with integer labels in {0, ..., C-1}"
            )

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        try:
            loss, prob = _SoftmaxLossFn.apply(
                bottoms[0], bottoms[1].detach(), self.axis, self.ignore, self.mode
            )
        except ValueError as exc:
            raise self.error(str(exc)) from None
        if len(self.param.top) > 1:
            return [loss, prob.detach()]
        return [loss]
