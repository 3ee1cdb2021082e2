"""InnerProduct: y = x W^T + b over the axes from `axis` on (weights (N, K), or (K, N) with
`transpose`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from elasticthought.engine.torch.layer import Layer, canonical_axis, register


@register
class InnerProduct(Layer):
    type_name = "InnerProduct"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.inner_product_param
        shape = bottoms[0].shape
        self.axis = canonical_axis(p.axis, len(shape))
        self.k = math.prod(shape[self.axis :])
        n = int(p.num_output)
        if n < 1:
            raise self.error("num_output must be positive")
        self.transpose = bool(p.transpose)
        wshape = [self.k, n] if self.transpose else [n, self.k]
        self.blobs = [self.make_blob(wshape, self.filler(p, "weight_filler"))]
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            self.blobs.append(self.make_blob([n], self.filler(p, "bias_filler")))

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        lead = x.shape[: self.axis]
        if math.prod(x.shape[self.axis :]) != self.k:
            raise self.error(
                f"input has {math.prod(x.shape[self.axis :])} values per row, weights expect "
                f"{self.k}"
            )
        x2 = x.reshape(-1, self.k) if x.dim() != 2 or self.axis != 1 else x
        w = self.blobs[0]
        b = self.blobs[1] if self.bias_term else None
        if self.transpose:
            y = x2 @ w if b is None else torch.addmm(b, x2, w)
        else:
            y = F.linear(x2, w, b)
        if len(lead) != 1:
            y = y.reshape(*lead, y.shape[-1])
        return [y]
