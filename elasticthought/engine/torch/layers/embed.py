"""Embed (a lookup table: integer indices -> learned rows) and Parameter (a learned blob as a
top)."""

from __future__ import annotations

import torch

from elasticthought.engine.torch.layer import Layer, register


@register
class Embed(Layer):
    """embed_param: num_output N and input_dim K (both required, > 0), bias_term (default
    true), weight_filler, bias_filler. Blobs: weights (K, N) -- row k is index k's vector --
    and bias (N,). The top is the bottom's shape plus N. Indices are truncated to integers and
    must lie in [0, K); the indices get no gradient (Caffe refuses to backpropagate to them)."""

    type_name = "Embed"
    num_bottoms = (1, 1)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        p = self.param.embed_param
        self.num_output, self.input_dim = int(p.num_output), int(p.input_dim)
        if self.num_output <= 0:
            raise self.error("EmbedLayer num_output must be positive.")
        if self.input_dim <= 0:
            raise self.error("EmbedLayer input_dim must be positive.")
        self.bias_term = bool(p.bias_term)
        self.blobs = [
            self.make_blob([self.input_dim, self.num_output], self.filler(p, "weight_filler"))
        ]
        if self.bias_term:
            self.blobs.append(self.make_blob([self.num_output], self.filler(p, "bias_filler")))

    def allow_force_backward(self, bottom_index: int) -> bool:
        return False

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        index = bottoms[0].detach().to(torch.int64)
        if index.numel():
            lo, hi = (int(v) for v in torch.aminmax(index))
            if lo < 0 or hi >= self.input_dim:
                raise self.error(f"indices must lie in [0, {self.input_dim}), got {lo}..{hi}")
        y = self.blobs[0][index]
        if self.bias_term:
            y = y + self.blobs[1]
        return [y]


@register
class Parameter(Layer):
    """parameter_param.shape: one learned blob of that shape (filled with zeros; learned or
    loaded from a caffemodel), handed out as the top; its diff is the parameter's diff."""

    type_name = "Parameter"
    num_bottoms = (0, 0)
    num_tops = (1, 1)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        shape = [int(d) for d in self.param.parameter_param.shape.dim]
        self.blobs = [torch.zeros(shape, device=self.device)]

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        blob = self.blobs[0]
        return [blob.view_as(blob)]
