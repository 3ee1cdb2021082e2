"""SPP: spatial pyramid pooling. Level i pools the (N, C, H, W) bottom into 2^i x 2^i bins with
kernel ceil(H / 2^i), stride = kernel and pad (kernel * 2^i - H + 1) / 2 (per dimension, integer
division), using Caffe's Pooling. With pyramid_height 1 the top is that pooling's (N, C, 1, 1)
output; otherwise the levels are flattened to (N, C * 4^i) and concatenated along axis 1."""

from __future__ import annotations

import math

import torch

from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.torch.layer import Layer, register
from elasticthought.engine.torch.layers.pooling import Pooling


def level_pooling_param(level: int, h: int, w: int, pool: int) -> caffe_pb2.LayerParameter:
    """The Pooling layer parameter of one pyramid level for an h x w bottom."""
    bins = 2**level
    lp = caffe_pb2.LayerParameter(type="Pooling")
    p = lp.pooling_param
    kernel_h, kernel_w = math.ceil(h / bins), math.ceil(w / bins)
    p.kernel_h, p.kernel_w = kernel_h, kernel_w
    p.stride_h, p.stride_w = kernel_h, kernel_w
    p.pad_h = (kernel_h * bins - h + 1) // 2
    p.pad_w = (kernel_w * bins - w + 1) // 2
    p.pool = pool
    return lp


@register
class SPP(Layer):
    """spp_param: pyramid_height, pool (MAX default, AVE, STOCHASTIC)."""

    type_name = "SPP"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.spp_param
        self.height = int(p.pyramid_height)
        if self.height < 1:
            raise self.error("pyramid_height must be at least 1")
        self.pool = int(p.pool)
        self._levels: dict[tuple[int, int], list[Pooling]] = {}
        self._pools(bottoms[0])

    def _pools(self, x: torch.Tensor) -> list[Pooling]:
        if x.dim() != 4:
            raise self.error(f"Input must have 4 axes, got {list(x.shape)}")
        h, w = int(x.shape[2]), int(x.shape[3])
        if h <= 0 or w <= 0:
            raise self.error("Input dimensions cannot be zero.")
        pools = self._levels.get((h, w))
        if pools is None:
            pools = []
            for level in range(self.height):
                lp = level_pooling_param(level, h, w, self.pool)
                lp.name = f"{self.name}/level{level}"
                lp.top.append("out")
                pool = Pooling(lp, self.phase, self.device)
                pool.setup([x])
                pools.append(pool)
            self._levels[(h, w)] = pools
        return pools

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        pools = self._pools(x)
        outs = [pool.forward([x])[0] for pool in pools]
        if self.height == 1:
            return [outs[0]]
        n = x.shape[0]
        return [torch.cat([o.reshape(n, -1) for o in outs], 1)]
