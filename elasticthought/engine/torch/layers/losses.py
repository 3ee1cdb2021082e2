"""SigmoidCrossEntropyLoss and EuclideanLoss."""

from __future__ import annotations

import torch

from elasticthought.engine.torch.layer import Layer, register
from elasticthought.engine.torch.layers.softmax import BATCH_SIZE, normalization_mode, normalizer


class _SigmoidCEFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, target, ignore, mode):
        pos = (x >= 0).to(x.dtype)
        term = x * (target - pos) - torch.log1p(torch.exp(x - 2 * x * pos))
        keep = None
        if ignore is not None:
            keep = target.to(torch.int64) != ignore
            term = torch.where(keep, term, torch.zeros_like(term))
        outer = x.shape[0] if x.dim() else 1
        inner = x.numel() // max(outer, 1)
        valid = int(keep.sum()) if keep is not None else None
        norm = normalizer(mode, outer, inner, valid)
        ctx.save_for_backward(x, target, keep if keep is not None else target)
        ctx.has_keep = keep is not None
        ctx.norm = norm
        return -term.sum() / norm

    @staticmethod
    def backward(ctx, dloss):
        x, target, keep = ctx.saved_tensors
        grad = torch.sigmoid(x) - target
        if ctx.has_keep:
            grad = grad * keep.to(grad.dtype)
        return grad * (dloss / ctx.norm), None, None, None


@register
class SigmoidCrossEntropyLoss(Layer):
    """Cross-entropy of sigmoid(x) against targets in [0, 1]; default normalization BATCH_SIZE."""

    type_name = "SigmoidCrossEntropyLoss"
    num_bottoms = (2, 2)
    num_tops = (1, 1)
    is_loss = True

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        if bottoms[0].numel() != bottoms[1].numel():
            raise self.error("logits and targets need the same count")
        lp = self.param.loss_param
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        self.mode = normalization_mode(self, BATCH_SIZE)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x, t = bottoms[0], bottoms[1].detach().reshape(bottoms[0].shape)
        return [_SigmoidCEFn.apply(x, t, self.ignore, self.mode)]


@register
class EuclideanLoss(Layer):
    """sum((a - b)^2) / (2N); both bottoms get gradients."""

    type_name = "EuclideanLoss"
    num_bottoms = (2, 2)
    num_tops = (1, 1)
    is_loss = True

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        if bottoms[0].numel() != bottoms[1].numel():
            raise self.error("both bottoms need the same count")

    def allow_force_backward(self, bottom_index: int) -> bool:
        return True

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        a, b = bottoms
        d = a - b.reshape(a.shape)
        n = a.shape[0] if a.dim() else 1
        return [(d * d).sum() / (2.0 * n)]
