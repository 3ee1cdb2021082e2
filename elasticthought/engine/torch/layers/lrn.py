"""LRN: local response normalization across channels or within a channel (Caffe's formulas).

ACROSS_CHANNELS: y = x * (k + alpha/n * sum over n neighbouring channels of x^2) ^ -beta.
WITHIN_CHANNEL: y = x * (1 + alpha * mean over the n x n window of x^2) ^ -beta, where the mean
divides by n*n including padded zeros and k is not used (Caffe builds it from Power, AVE
Pooling and Eltwise PROD layers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from elasticthought.engine.torch.layer import Layer, register

ACROSS_CHANNELS, WITHIN_CHANNEL = 0, 1


@register
class LRN(Layer):
    type_name = "LRN"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.lrn_param
        self.size = int(p.local_size)
        if self.size % 2 == 0:
            raise self.error("LRN only supports odd values for local_size")
        if bottoms[0].dim() != 4:
            raise self.error("LRN needs 4-D input")
        self.alpha, self.beta, self.k = float(p.alpha), float(p.beta), float(p.k)
        self.region = int(p.norm_region)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        n, c, h, w = x.shape
        half = (self.size - 1) // 2
        sq = x * x
        if self.region == ACROSS_CHANNELS:
            # sum over channels: pool a (N, 1, C, H*W) view along the channel axis
            s = F.avg_pool2d(
                sq.reshape(n, 1, c, h * w), (self.size, 1), 1, (half, 0), False, True, 1
            ).reshape(n, c, h, w)
            scale = s * (self.alpha / self.size) + self.k
        else:
            mean = F.avg_pool2d(sq, self.size, 1, half, False, True)
            scale = mean * self.alpha + 1.0
        return [x * torch.pow(scale, -self.beta)]
