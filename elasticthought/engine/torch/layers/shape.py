"""Layers that move data without arithmetic: Concat, Slice, Split, Flatten, Reshape, Crop,
Silence."""

from __future__ import annotations

import math

import torch

from elasticthought.engine.torch.layer import Layer, canonical_axis, register


@register
class Concat(Layer):
    type_name = "Concat"
    num_bottoms = (1, None)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.concat_param
        use_dim = p.HasField("concat_dim") and not p.HasField("axis")
        self.axis = canonical_axis(p.concat_dim if use_dim else p.axis, bottoms[0].dim())
        for b in bottoms[1:]:
            if b.dim() != bottoms[0].dim() or any(
                b.shape[i] != bottoms[0].shape[i] for i in range(b.dim()) if i != self.axis
            ):
                raise self.error(
                    f"bottoms differ outside the concat axis: {[list(t.shape) for t in bottoms]}"
                )

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(bottoms) == 1:
            return [bottoms[0].view_as(bottoms[0])]
        return [torch.cat(bottoms, self.axis)]


@register
class Slice(Layer):
    type_name = "Slice"
    num_bottoms = (1, 1)
    num_tops = (1, None)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.slice_param
        use_dim = p.HasField("slice_dim") and not p.HasField("axis")
        self.axis = canonical_axis(p.slice_dim if use_dim else p.axis, bottoms[0].dim())
        self.points = [int(v) for v in p.slice_point]
        ntop = len(self.param.top)
        if self.points and len(self.points) != ntop - 1:
            raise self.error(f"{len(self.points)} slice points for {ntop} tops")
        self.sizes(bottoms[0].shape[self.axis])

    def sizes(self, n: int) -> list[int]:
        ntop = len(self.param.top)
        if self.points:
            bounds = [0, *self.points, n]
            sizes = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
            if min(sizes) <= 0:
                raise self.error(f"slice points {self.points} do not fit axis size {n}")
            return sizes
        if n % ntop:
            raise self.error(f"axis size {n} is not divisible into {ntop} equal slices")
        return [n // ntop] * ntop

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        return list(torch.split(x, self.sizes(x.shape[self.axis]), self.axis))


@register
class Split(Layer):
    """Copies its bottom to every top; backward sums the top diffs."""

    type_name = "Split"
    num_bottoms = (1, 1)
    num_tops = (1, None)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        return [x.view_as(x) for _ in self.param.top]


@register
class Flatten(Layer):
    type_name = "Flatten"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.flatten_param
        nd = bottoms[0].dim()
        self.start = canonical_axis(p.axis, nd)
        self.end = canonical_axis(p.end_axis, nd, "end_axis")
        if self.end < self.start:
            raise self.error("end_axis is before axis")

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.flatten(bottoms[0], self.start, self.end)]


@register
class Reshape(Layer):
    """Caffe's Reshape: dim 0 copies the bottom's dim, -1 is inferred; `axis`/`num_axes`
    select the range of bottom axes that `shape` replaces."""

    type_name = "Reshape"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.reshape_param
        self.dims = [int(d) for d in p.shape.dim]
        if self.dims.count(-1) > 1:
            raise self.error("at most one dim may be -1")
        if any(d < -1 for d in self.dims):
            raise self.error("dims must be >= -1")
        self.axis, self.num_axes = int(p.axis), int(p.num_axes)
        if self.num_axes < -1:
            raise self.error("num_axes must be >= -1")
        self.top_shape(list(bottoms[0].shape))

    def top_shape(self, shape: list[int]) -> list[int]:
        nd = len(shape)
        start = self.axis if self.axis >= 0 else nd + self.axis + 1
        if not 0 <= start <= nd:
            raise self.error(f"axis {self.axis} out of range for {nd} axes")
        end = nd if self.num_axes == -1 else start + self.num_axes
        if end > nd:
            raise self.error("axis + num_axes exceeds the bottom's axes")
        new = list(self.dims)
        for i, d in enumerate(self.dims):
            if d == 0:
                if start + i >= nd:
                    raise self.error(f"dim {i} copies a bottom axis that does not exist")
                new[i] = shape[start + i]
        out = shape[:start] + new + shape[end:]
        if -1 in self.dims:
            known = math.prod(d for d in out if d != -1)
            total = math.prod(shape)
            if known == 0 or total % known:
                raise self.error(f"cannot infer a dim: {total} values into {out}")
            out[start + self.dims.index(-1)] = total // known
        if math.prod(out) != math.prod(shape):
            raise self.error(f"cannot reshape {shape} ({math.prod(shape)} values) into {out}")
        return out

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        return [x.reshape(self.top_shape(list(x.shape)))]


@register
class Crop(Layer):
    """Crops bottom 0 to the shape of bottom 1 on the axes from `axis`, starting at `offset`."""

    type_name = "Crop"
    num_bottoms = (2, 2)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.crop_param
        if len(bottoms) != 2:
            raise self.error("Crop needs 2 bottoms")
        self.axis = canonical_axis(p.axis, bottoms[0].dim())
        self.offsets = [int(o) for o in p.offset]
        n = bottoms[0].dim() - self.axis
        if len(self.offsets) > 1 and len(self.offsets) != n:
            raise self.error(f"{len(self.offsets)} offsets for {n} cropped axes")
        self.slices(bottoms[0], bottoms[1])

    def slices(self, x: torch.Tensor, ref: torch.Tensor) -> tuple[slice, ...]:
        if x.dim() != ref.dim():
            raise self.error("both bottoms need the same number of axes")
        out = []
        for i in range(x.dim()):
            if i < self.axis:
                out.append(slice(None))
                continue
            off = 0
            if len(self.offsets) == 1:
                off = self.offsets[0]
            elif self.offsets:
                off = self.offsets[i - self.axis]
            if x.shape[i] - off < ref.shape[i]:
                raise self.error(
                    f"axis {i}: cannot crop {ref.shape[i]} from {x.shape[i]} at offset {off}"
                )
            out.append(slice(off, off + ref.shape[i]))
        return tuple(out)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x, ref = bottoms
        return [x[self.slices(x, ref)]]


@register
class Silence(Layer):
    """Consumes its bottoms; no tops."""

    type_name = "Silence"
    num_bottoms = (1, None)
    num_tops = (0, 0)

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return []
