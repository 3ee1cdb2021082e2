"""Layers that pick items of the batch: BatchReindex and Filter. Their index/selector bottom
never gets a gradient (Caffe aborts when asked for one)."""

from __future__ import annotations

import torch

from elasticthought.engine.torch.layer import Layer, register


@register
class BatchReindex(Layer):
    """top[i] = bottom[int(index[i])]; the index is a 1-axis blob of values in [0, N). Items
    picked several times get the sum of their diffs."""

    type_name = "BatchReindex"
    num_bottoms = (2, 2)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        if bottoms[1].dim() != 1:
            raise self.error(f"the index must have 1 axis, got {list(bottoms[1].shape)}")

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index == 0

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x, index = bottoms[0], bottoms[1].detach()
        if index.dim() != 1:
            raise self.error(f"the index must have 1 axis, got {list(index.shape)}")
        idx = index.to(torch.int64)
        if idx.numel():
            lo, hi = (int(v) for v in torch.aminmax(index))
            if lo < 0:
                raise self.error("Index specified for reindex layer was negative.")
            if hi >= x.shape[0]:
                raise self.error("Index specified for reindex layer was greater than batch size.")
        return [x[idx]]


@register
class Filter(Layer):
    """Bottoms b_1..b_k and a selector (N, 1, ...); tops t_1..t_k keep the items whose selector
    value is nonzero, in order. Items not forwarded get a zero diff."""

    type_name = "Filter"
    num_bottoms = (2, None)
    num_tops = (1, None)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        if len(self.param.top) != len(bottoms) - 1:
            raise self.error("Filter needs one top per bottom, the selector excepted")
        self._check(bottoms)

    def _check(self, bottoms: list[torch.Tensor]) -> None:
        selector = bottoms[-1]
        if any(int(d) != 1 for d in selector.shape[1:]):
            raise self.error("Selector blob dimensions must be singletons (1), except the first")
        for b in bottoms[:-1]:
            if b.dim() == 0 or selector.dim() == 0 or b.shape[0] != selector.shape[0]:
                raise self.error(
                    "Each bottom should have the same 0th dimension as the selector blob"
                )

    def allow_force_backward(self, bottom_index: int) -> bool:
        return bottom_index != len(self.param.bottom) - 1

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        self._check(bottoms)
        keep = torch.nonzero(bottoms[-1].detach().reshape(-1) != 0).reshape(-1)
        return [b[keep] for b in bottoms[:-1]]
