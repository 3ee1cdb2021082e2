"""Classification losses added for issue 18: HingeLoss, MultinomialLogisticLoss, InfogainLoss.

Labels are truncated to integers, as Caffe does, and never get a gradient. LOG_THRESHOLD is
Caffe's kLOG_THRESHOLD: probabilities are clamped to it before the log, and the gradients use
the clamped value.
"""

from __future__ import annotations

import math

import torch

from elasticthought.engine.caffemodel import blob_to_array, read_blobproto
from elasticthought.engine.torch.layer import Layer, canonical_axis, register
from elasticthought.engine.torch.layers.softmax import VALID, normalizer

LOG_THRESHOLD = 1e-20
L1, L2 = 1, 2


def _labels(layer: Layer, label: torch.Tensor, count: int, classes: int) -> torch.Tensor:
    """The labels as int64 (count of them), checked to lie in [0, classes)."""
    lab = label.detach().reshape(-1).to(torch.int64)
    if lab.numel() != count:
        raise layer.error(f"{lab.numel()} labels for {count} predictions")
    lo, hi = (int(v) for v in torch.aminmax(lab))
    if lo < 0 or hi >= classes:
        raise layer.error(f"labels must lie in [0, {classes}), got {lo}..{hi}")
    return lab


@register
class HingeLoss(Layer):
    """One-vs-all hinge loss on (N, D) scores: with t = -1 at the label and +1 elsewhere,
    L1 (default) sum(max(0, 1 + t x)) / N, L2 sum(max(0, 1 + t x)^2) / N."""

    type_name = "HingeLoss"
    num_bottoms = (2, 2)
    num_tops = (1, 1)
    is_loss = True

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        self.norm = int(self.param.hinge_loss_param.norm)
        if self.norm not in (L1, L2):
            raise self.error("Unknown Norm")

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        num = int(x.shape[0])
        scores = x.reshape(num, -1)
        lab = _labels(self, bottoms[1], num, scores.shape[1])
        sign = torch.ones_like(scores)
        sign[torch.arange(num, device=x.device), lab] = -1.0
        margin = torch.relu(1.0 + sign * scores)
        if self.norm == L2:
            margin = margin * margin
        return [margin.sum() / num]


class _MultinomialFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, prob, lab):
        num = prob.shape[0]
        rows = prob.reshape(num, -1)
        picked = torch.clamp(rows[torch.arange(num, device=prob.device), lab], min=LOG_THRESHOLD)
        ctx.save_for_backward(picked, lab)
        ctx.shape = prob.shape
        return -torch.log(picked).sum() / num

    @staticmethod
    def backward(ctx, dloss):
        picked, lab = ctx.saved_tensors
        num = picked.shape[0]
        grad = torch.zeros(ctx.shape, dtype=picked.dtype, device=picked.device).reshape(num, -1)
        grad[torch.arange(num, device=grad.device), lab] = -(dloss / num) / picked
        return grad.reshape(ctx.shape), None


@register
class MultinomialLogisticLoss(Layer):
    """-sum_n log(max(p[n, label_n], 1e-20)) / N on (N, D) probabilities; labels (N, 1, 1, 1)
    or (N,)."""

    type_name = "MultinomialLogisticLoss"
    num_bottoms = (2, 2)
    num_tops = (1, 1)
    is_loss = True

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        label = bottoms[1]
        if any(int(label.shape[i]) != 1 for i in range(1, min(label.dim(), 4))):
            raise self.error(f"labels must be (N, 1, 1, 1), got {list(label.shape)}")

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        prob = bottoms[0]
        num = int(prob.shape[0])
        lab = _labels(self, bottoms[1], num, prob.numel() // max(num, 1))
        return [_MultinomialFn.apply(prob, lab)]


class _InfogainFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lab, keep, h, axis, mode, has_ignore):
        shape = x.shape
        outer, classes = math.prod(shape[:axis]), shape[axis]
        inner = math.prod(shape[axis + 1 :])
        prob = torch.softmax(x, axis)
        p3 = prob.reshape(outer, classes, inner)
        rows = h[lab].reshape(outer, inner, classes).transpose(1, 2)  # H[label, l]
        logs = torch.log(torch.clamp(p3, min=LOG_THRESHOLD))
        per = (rows * logs).sum(1) * keep.reshape(outer, inner)
        valid = int(keep.sum()) if has_ignore else None
        norm = normalizer(mode, outer, inner, valid)
        ctx.save_for_backward(prob, rows, keep)
        ctx.meta = (outer, classes, inner, norm)
        return -per.sum() / norm, prob

    @staticmethod
    def backward(ctx, dloss, dprob):
        prob, rows, keep = ctx.saved_tensors
        outer, classes, inner, norm = ctx.meta
        p3 = prob.reshape(outer, classes, inner)
        grad = p3 * rows.sum(1, keepdim=True) - rows
        grad = grad * keep.reshape(outer, 1, inner) * (dloss / norm)
        return grad.reshape(prob.shape), None, None, None, None, None, None


@register
class InfogainLoss(Layer):
    """Softmax over `infogain_loss_param.axis` (default 1), then
    -sum_l H[label, l] log(max(p_l, 1e-20)) summed over the (non-ignored) positions and divided
    by the loss_param.normalization (default VALID; the deprecated `normalize` is refused as
    Caffe does). H (K x K) comes from the BlobProto file `source` or a third bottom; an optional
    second top is the softmax probability."""

    type_name = "InfogainLoss"
    num_bottoms = (2, 3)
    num_tops = (1, 2)
    is_loss = True

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        lp = self.param.loss_param
        if lp.HasField("normalize"):
            raise self.error('normalize is deprecated. use "normalization"')
        self.mode = int(lp.normalization) if lp.HasField("normalization") else VALID
        self.ignore = int(lp.ignore_label) if lp.HasField("ignore_label") else None
        p = self.param.infogain_loss_param
        self.axis = canonical_axis(int(p.axis), bottoms[0].dim())
        self.matrix: torch.Tensor | None = None
        if len(bottoms) < 3:
            if not p.HasField("source"):
                raise self.error("Infogain matrix source must be specified.")
            arr = blob_to_array(read_blobproto(p.source))
            self.matrix = torch.as_tensor(arr.reshape(-1).copy(), device=self.device)
        classes = int(bottoms[0].shape[self.axis])
        h = self.matrix if self.matrix is not None else bottoms[2]
        if h.numel() != classes * classes:
            raise self.error(f"H must be {classes}x{classes}, has {h.numel()} values")

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index == 0

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        classes = int(x.shape[self.axis])
        count = x.numel() // classes
        h = self.matrix if self.matrix is not None else bottoms[2].detach()
        h = h.reshape(classes, classes).to(x.device)
        lab = bottoms[1].detach().reshape(-1).to(torch.int64)
        if lab.numel() != count:
            raise self.error("Number of labels must match number of predictions")
        if self.ignore is not None:
            keep = lab != self.ignore
            lab = torch.where(keep, lab, torch.zeros_like(lab))
        else:
            keep = torch.ones_like(lab, dtype=torch.bool)
        lo, hi = (int(v) for v in torch.aminmax(lab))
        if lo < 0 or hi >= classes:
            raise self.error(f"labels must lie in [0, {classes}), got {lo}..{hi}")
        loss, prob = _InfogainFn.apply(
            x, lab, keep.to(x.dtype), h, self.axis, self.mode, self.ignore is not None
        )
        if len(self.param.top) > 1:
            return [loss, prob.detach()]
        return [loss]
