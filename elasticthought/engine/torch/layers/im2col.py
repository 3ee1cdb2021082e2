"""Im2col: the patches a convolution would see, as channels. A (N, C, H, W) bottom gives
(N, C * kh * kw, out_h, out_w) with Caffe's column order (channel, then kernel row, then kernel
column) and convolution_param's kernel, stride, pad and dilation (2 spatial axes, axis 1).
Backward adds each column back to its pixels (col2im)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from elasticthought.engine.torch.layer import Layer, canonical_axis, register
from elasticthought.engine.torch.layers.conv import _spatial


@register
class Im2col(Layer):
    type_name = "Im2col"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.convolution_param
        x = bottoms[0]
        axis = canonical_axis(p.axis, x.dim())
        if axis != 1 or x.dim() != 4:
            raise self.error("Im2col supports (N, C, H, W) bottoms with axis 1")
        has_k = p.HasField("kernel_h") or p.HasField("kernel_w")
        if has_k == bool(len(p.kernel_size)):
            raise self.error("give either kernel_size or kernel_h and kernel_w")
        self.kernel = _spatial(p.kernel_size, p.kernel_h, p.kernel_w, has_k, 2, 1, "kernel", self)
        has_s = p.HasField("stride_h") or p.HasField("stride_w")
        self.stride = _spatial(p.stride, p.stride_h, p.stride_w, has_s, 2, 1, "stride", self)
        has_p = p.HasField("pad_h") or p.HasField("pad_w")
        self.pad = _spatial(p.pad, p.pad_h, p.pad_w, has_p, 2, 0, "pad", self)
        self.dilation = _spatial(p.dilation, 0, 0, False, 2, 1, "dilation", self)
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.dilation) < 1:
            raise self.error("kernel, stride and dilation must be positive")

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        out = [
            (size + 2 * pad - (dil * (k - 1) + 1)) // stride + 1
            for size, k, stride, pad, dil in zip(
                x.shape[2:], self.kernel, self.stride, self.pad, self.dilation, strict=True
            )
        ]
        cols = F.unfold(x, self.kernel, self.dilation, self.pad, self.stride)
        return [cols.reshape(x.shape[0], cols.shape[1], out[0], out[1])]
