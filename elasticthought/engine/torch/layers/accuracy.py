"""Accuracy (top_k, ignore_label, optional per-class top) and ArgMax. Neither backpropagates."""

from __future__ import annotations

import math

import torch

from elasticthought.engine.torch.layer import Layer, canonical_axis, register


@register
class Accuracy(Layer):
    """A sample is correct when fewer than top_k classes score >= the true class (ties count
    against it)."""

    type_name = "Accuracy"
    num_bottoms = (2, 2)
    num_tops = (1, 2)
    has_backward = False

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.accuracy_param
        x, label = bottoms[0], bottoms[1]
        self.axis = canonical_axis(p.axis, x.dim())
        self.top_k = int(p.top_k)
        self.ignore = int(p.ignore_label) if p.HasField("ignore_label") else None
        classes = x.shape[self.axis]
        if self.top_k > classes:
            raise self.error(f"top_k {self.top_k} exceeds the {classes} classes")
        outer = math.prod(x.shape[: self.axis])
        inner = math.prod(x.shape[self.axis + 1 :])
        if label.numel() != outer * inner:
            raise self.error(
                f"label count ({label.numel()}) must equal outer*inner ({outer * inner})"
            )

    @torch.no_grad()
    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x, label = bottoms[0].detach(), bottoms[1].detach()
        classes = x.shape[self.axis]
        outer = math.prod(x.shape[: self.axis])
        scores = x.reshape(outer, classes, -1)
        lab = label.reshape(outer, -1).to(torch.long)
        keep = lab != self.ignore if self.ignore is not None else torch.ones_like(lab, dtype=bool)
        safe = torch.where(keep, lab, torch.zeros_like(lab))
        lo, hi = (int(v) for v in torch.aminmax(safe))
        if lo < 0 or hi >= classes:
            raise self.error(f"label out of range [0, {classes})")
        true = torch.gather(scores, 1, safe.unsqueeze(1))
        better = (scores >= true).sum(dim=1) - 1
        hit = (better < self.top_k) & keep
        count = int(keep.sum())
        acc = hit.sum().to(x.dtype) / count if count else torch.zeros((), dtype=x.dtype)
        tops = [acc.reshape(()).to(x.device)]
        if len(self.param.top) > 1:
            nums = torch.bincount(safe[keep], minlength=classes).to(x.dtype)
            hits = torch.bincount(safe[hit], minlength=classes).to(x.dtype)
            per = torch.where(nums > 0, hits / torch.clamp(nums, min=1), torch.zeros_like(nums))
            tops.append(per)
        return tops


@register
class ArgMax(Layer):
    """Indices (or values with out_max_val and an axis) of the top_k largest entries; ties go to
    the larger index. Without axis: per sample over C*H*W, top shape (N, 1 or 2, top_k)."""

    type_name = "ArgMax"
    num_bottoms = (1, 1)
    num_tops = (1, 1)
    has_backward = False

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.argmax_param
        x = bottoms[0]
        self.out_max_val = bool(p.out_max_val)
        self.top_k = int(p.top_k)
        self.axis = canonical_axis(p.axis, x.dim()) if p.HasField("axis") else None
        span = x.shape[self.axis] if self.axis is not None else x.numel() // x.shape[0]
        if self.top_k < 1 or self.top_k > span:
            raise self.error(f"top_k must be in [1, {span}]")

    def _topk(self, v: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Descending, ties toward the larger index (sort the reversed axis stably)."""
        n = v.shape[dim]
        flipped = torch.flip(v, (dim,))
        vals, idx = torch.sort(flipped, dim=dim, descending=True, stable=True)
        vals = vals.narrow(dim, 0, self.top_k)
        idx = (n - 1) - idx.narrow(dim, 0, self.top_k)
        return vals, idx

    @torch.no_grad()
    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0].detach()
        if self.axis is not None:
            vals, idx = self._topk(x, self.axis)
            return [vals if self.out_max_val else idx.to(x.dtype)]
        n = x.shape[0]
        vals, idx = self._topk(x.reshape(n, -1), 1)
        parts = [idx.to(x.dtype)] + ([vals] if self.out_max_val else [])
        y = torch.stack(parts, dim=1)
        extra = [1] * max(0, x.dim() - 3)
        return [y.reshape(n, len(parts), self.top_k, *extra)]
