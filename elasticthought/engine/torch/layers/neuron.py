"""Element-wise layers (Caffe's NeuronLayer family): one bottom, one top of the same shape."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from elasticthought.engine.torch.layer import Layer, register


@register
class ReLU(Layer):
    """max(x, 0) + negative_slope * min(x, 0); the gradient at 0 is negative_slope."""

    type_name = "ReLU"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        self.slope = float(self.param.relu_param.negative_slope)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.slope == 0.0:
            return [F.relu(bottoms[0])]
        return [F.leaky_relu(bottoms[0], self.slope)]


@register
class PReLU(Layer):
    """ReLU with a learned negative slope per channel (axis 1), or one shared slope."""

    type_name = "PReLU"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.prelu_param
        x = bottoms[0]
        if x.dim() < 2:
            raise self.error("PReLU needs a bottom with at least 2 axes")
        self.shared = bool(p.channel_shared)
        shape = [] if self.shared else [int(x.shape[1])]
        filler = p.filler if p.HasField("filler") else None
        if filler is None:
            from elasticthought.engine.proto import caffe_pb2

            filler = caffe_pb2.FillerParameter(type="constant", value=0.25)
        self.blobs = [self.make_blob(shape, filler)]

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x, a = bottoms[0], self.blobs[0]
        if self.shared:
            a = a.reshape(1)
        return [F.prelu(x, a)]


@register
class ELU(Layer):
    type_name = "ELU"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        self.alpha = float(self.param.elu_param.alpha)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return [F.elu(bottoms[0], self.alpha)]


@register
class Sigmoid(Layer):
    type_name = "Sigmoid"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.sigmoid(bottoms[0])]


@register
class TanH(Layer):
    type_name = "TanH"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.tanh(bottoms[0])]


@register
class AbsVal(Layer):
    """|x|; the gradient is sign(x) (0 at 0)."""

    type_name = "AbsVal"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.abs(bottoms[0])]


class _BNLLFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x > 0, x + torch.log1p(torch.exp(-x)), torch.log1p(torch.exp(x)))

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        e = torch.exp(torch.clamp(x, max=50.0))
        return dy * e / (e + 1)


@register
class BNLL(Layer):
    """log(1 + exp(x)), computed stably as Caffe does."""

    type_name = "BNLL"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return [_BNLLFn.apply(bottoms[0])]


@register
class Power(Layer):
    """(shift + scale * x) ^ power."""

    type_name = "Power"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.power_param
        self.power, self.scale, self.shift = float(p.power), float(p.scale), float(p.shift)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        if self.power * self.scale == 0.0:
            value = 1.0 if self.power == 0.0 else self.shift**self.power
            return [torch.full_like(x, value).detach()]
        if self.scale != 1.0:
            x = x * self.scale
        if self.shift != 0.0:
            x = x + self.shift
        if self.power == 1.0:
            return [x if x is not bottoms[0] else x.view_as(x)]
        if self.power == 2.0:
            return [x * x]
        return [torch.pow(x, self.power)]


@register
class Exp(Layer):
    """base ^ (shift + scale * x); base -1 means e."""

    type_name = "Exp"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.exp_param
        base = float(p.base)
        if base != -1.0 and base <= 0:
            raise self.error("base must be positive (or -1 for e)")
        log_base = 1.0 if base == -1.0 else math.log(base)
        self.inner = log_base * float(p.scale)
        self.outer = 1.0 if p.shift == 0 else (math.e if base == -1.0 else base) ** float(p.shift)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        if self.inner != 1.0:
            x = x * self.inner
        y = torch.exp(x)
        if self.outer != 1.0:
            y = y * self.outer
        return [y]


@register
class Log(Layer):
    """log_base(shift + scale * x); base -1 means e."""

    type_name = "Log"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.log_param
        base = float(p.base)
        if base != -1.0 and base <= 0:
            raise self.error("base must be positive (or -1 for e)")
        self.base_scale = 1.0 if base == -1.0 else 1.0 / math.log(base)
        self.scale, self.shift = float(p.scale), float(p.shift)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        if self.scale != 1.0:
            x = x * self.scale
        if self.shift != 0.0:
            x = x + self.shift
        y = torch.log(x)
        if self.base_scale != 1.0:
            y = y * self.base_scale
        return [y]


@register
class Dropout(Layer):
    """TRAIN: zero with probability dropout_ratio and scale the rest by 1/(1-ratio); TEST:
    identity."""

    type_name = "Dropout"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        self.ratio = float(self.param.dropout_param.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            raise self.error("dropout_ratio must be in [0, 1)")

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.phase == "TRAIN":
            return [F.dropout(bottoms[0], self.ratio, training=True)]
        return [bottoms[0]]
