"""Scale and Bias: multiply / add a blob broadcast along axes [axis, axis + num_axes) of the
first bottom. The blob is a learned parameter, or the second bottom when there are two."""

from __future__ import annotations

import torch

from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.torch.layer import Layer, canonical_axis, register


def _operand_shape(layer: Layer, x: torch.Tensor, axis: int, num_axes: int) -> list[int]:
    if num_axes < -1:
        raise layer.error("num_axes must be non-negative, or -1 to extend to the end")
    ndim = x.dim()
    axis = canonical_axis(axis, ndim) if not (ndim == 0 and axis == 0) else 0
    end = ndim if num_axes == -1 else axis + num_axes
    if end > ndim:
        raise layer.error(f"axis {axis} + num_axes {num_axes} exceeds the {ndim} input axes")
    return list(x.shape[axis:end])


def _broadcast(v: torch.Tensor, x: torch.Tensor, axis: int) -> torch.Tensor:
    """View `v` so that it lines up with x's axes starting at `axis`."""
    trailing = x.dim() - axis - v.dim()
    return v.reshape(*([1] * axis), *v.shape, *([1] * trailing))


class _Broadcasting(Layer):
    num_bottoms = (1, 2)
    num_tops = (1, 1)

    def _axis(self, x: torch.Tensor, axis: int) -> int:
        return canonical_axis(axis, x.dim()) if x.dim() else 0

    def _check_bottom_operand(self, x: torch.Tensor, v: torch.Tensor, axis: int) -> None:
        if list(x.shape[axis : axis + v.dim()]) != list(v.shape):
            raise self.error(
                f"second bottom shape {list(v.shape)} does not match the first bottom's axes "
                f"from {axis}: {list(x.shape)}"
            )


@register
class Scale(_Broadcasting):
    type_name = "Scale"

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.scale_param
        x = bottoms[0]
        self.axis = self._axis(x, p.axis)
        self.from_bottom = len(bottoms) > 1
        if self.from_bottom:
            self._check_bottom_operand(x, bottoms[1], self.axis)
            shape = list(bottoms[1].shape)
        else:
            shape = _operand_shape(self, x, p.axis, p.num_axes)
            filler = (
                p.filler
                if p.HasField("filler")
                else caffe_pb2.FillerParameter(type="constant", value=1.0)
            )
            self.blobs.append(self.make_blob(shape, filler))
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            self.blobs.append(self.make_blob(shape, self.filler(p, "bias_filler")))

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        scale = bottoms[1] if self.from_bottom else self.blobs[0]
        y = x * _broadcast(scale, x, self.axis)
        if self.bias_term:
            y = y + _broadcast(self.blobs[-1], x, self.axis)
        return [y]


@register
class Bias(_Broadcasting):
    type_name = "Bias"

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.bias_param
        x = bottoms[0]
        self.axis = self._axis(x, p.axis)
        self.from_bottom = len(bottoms) > 1
        if self.from_bottom:
            self._check_bottom_operand(x, bottoms[1], self.axis)
        else:
            shape = _operand_shape(self, x, p.axis, p.num_axes)
            self.blobs.append(self.make_blob(shape, self.filler(p, "filler")))

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        bias = bottoms[1] if self.from_bottom else self.blobs[0]
        return [x + _broadcast(bias, x, self.axis)]
