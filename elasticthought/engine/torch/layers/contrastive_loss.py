"""ContrastiveLoss (siamese nets): pulls similar pairs together, pushes dissimilar ones apart.

Bottoms: a (N, C[, 1, 1]), b (same shape), y (N labels; nonzero after truncation to int =
similar). With d = ||a_n - b_n||^2 the loss is `sum_n L_n / (2N)` where `L_n = d` for similar
pairs and, for dissimilar ones, `max(margin - sqrt(d), 0)^2` (or `max(margin - d, 0)` with
`legacy_version`). Caffe's backward is not the exact derivative of the non-legacy form: it
divides by `sqrt(d) + 1e-4`, which this layer reproduces. The label gets no gradient.
"""

from __future__ import annotations

import torch

from elasticthought.engine.torch.layer import Layer, register

#: added to the distance in the dissimilar-pair gradient, as Caffe does
DIST_EPS = 1e-4


class _ContrastiveFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, similar, margin, legacy):
        n = a.shape[0]
        diff = (a - b).reshape(n, -1)
        dist_sq = (diff * diff).sum(1)
        if legacy:
            far = torch.clamp(margin - dist_sq, min=0.0)
        else:
            far = torch.clamp(margin - torch.sqrt(dist_sq), min=0.0) ** 2
        loss = torch.where(similar, dist_sq, far).sum() / n / 2.0
        ctx.save_for_backward(diff, dist_sq, similar)
        ctx.margin, ctx.legacy, ctx.shape = margin, legacy, a.shape
        return loss

    @staticmethod
    def backward(ctx, dloss):
        diff, dist_sq, similar = ctx.saved_tensors
        n = diff.shape[0]
        alpha = dloss / n
        if ctx.legacy:
            mdist = ctx.margin - dist_sq
            beta = -alpha.expand_as(dist_sq)
        else:
            dist = torch.sqrt(dist_sq)
            mdist = ctx.margin - dist
            beta = -alpha * mdist / (dist + DIST_EPS)
        coeff = torch.where(
            similar, alpha.expand_as(dist_sq), torch.where(mdist > 0, beta, torch.zeros_like(beta))
        )
        grad = (coeff.unsqueeze(1) * diff).reshape(ctx.shape)
        ga = grad if ctx.needs_input_grad[0] else None
        gb = -grad if ctx.needs_input_grad[1] else None
        return ga, gb, None, None, None


@register
class ContrastiveLoss(Layer):
    """Caffe's ContrastiveLoss (see the module docstring); `contrastive_loss_param`: margin
    (default 1), legacy_version (default false)."""

    type_name = "ContrastiveLoss"
    num_bottoms = (3, 3)
    num_tops = (1, 1)
    is_loss = True

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        a, b, y = bottoms

        def legacy(t: torch.Tensor, axis: int) -> int:
            return int(t.shape[axis]) if t.dim() > axis else 1

        if legacy(a, 1) != legacy(b, 1):
            raise self.error(f"a and b need the same channels: {list(a.shape)} vs {list(b.shape)}")
        for t, what in ((a, "a"), (b, "b"), (y, "the label")):
            if legacy(t, 2) != 1 or legacy(t, 3) != 1:
                raise self.error(f"{what} needs height and width 1, got {list(t.shape)}")
        if legacy(y, 1) != 1:
            raise self.error(f"the label needs one channel, got {list(y.shape)}")
        if a.shape[0] != b.shape[0] or y.shape[0] != a.shape[0]:
            raise self.error("a, b and the label need the same num")
        p = self.param.contrastive_loss_param
        self.margin = float(p.margin)
        self.legacy = bool(p.legacy_version)

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != 2

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        a, b, y = bottoms
        similar = y.detach().reshape(-1).to(torch.int64) != 0
        return [_ContrastiveFn.apply(a, b, similar, self.margin, self.legacy)]
