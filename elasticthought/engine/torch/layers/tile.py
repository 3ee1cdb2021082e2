"""Tile: repeat the blob `tiles` times along `axis` (each slice count(axis..) copied whole)."""

from __future__ import annotations

import torch

from elasticthought.engine.torch.layer import Layer, canonical_axis, register


@register
class Tile(Layer):
    """tile_param: axis (default 1), tiles (required, > 0). The top's axis is tiles times the
    bottom's; [a, b] tiled 2 along axis 0 is [a, b, a, b]. Backward sums the copies."""

    type_name = "Tile"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.tile_param
        if not p.HasField("tiles"):
            raise self.error("Number of tiles must be specified")
        if p.tiles <= 0:
            raise self.error("Number of tiles must be positive.")
        self.tiles = int(p.tiles)
        self.axis_param = int(p.axis)
        canonical_axis(self.axis_param, bottoms[0].dim())

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        x = bottoms[0]
        axis = canonical_axis(self.axis_param, x.dim())
        reps = [1] * x.dim()
        reps[axis] = self.tiles
        return [x.repeat(*reps)]
