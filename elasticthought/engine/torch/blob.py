"""`Blob`: a named N-D array of a net with its diff, like pycaffe's Blob.

`tensor` is the data (a torch tensor; for parameters the leaf that autograd accumulates into),
`grad` the diff (same shape; for parameters it is `tensor.grad`). `data` and `diff` are numpy
views of them (writable on the CPU; on CUDA they are copies: assign `blob.data = array` there).
"""

from __future__ import annotations

import numpy as np
import torch


class Blob:
    __slots__ = ("tensor", "_grad", "_src", "is_param")

    def __init__(self, tensor: torch.Tensor, is_param: bool = False) -> None:
        self.tensor = tensor
        self._grad: torch.Tensor | None = None
        #: the autograd tensor whose gradient is this blob's diff after a backward pass
        self._src: torch.Tensor | None = None
        self.is_param = is_param

    # diff -------------------------------------------------------------------------------
    @property
    def grad(self) -> torch.Tensor:
        t = self.tensor
        if self.is_param:
            g = t.grad
            if g is None or g.shape != t.shape:
                g = torch.zeros_like(t, requires_grad=False)
                t.grad = g
            return g
        g = self._grad
        if g is None or g.shape != t.shape:
            g = self._grad = torch.zeros(t.shape, dtype=t.dtype, device=t.device)
        return g

    @grad.setter
    def grad(self, value: torch.Tensor | np.ndarray | float) -> None:
        self.grad.copy_(torch.as_tensor(value, dtype=self.tensor.dtype))

    # numpy views ----------------------------------------------------------------------------
    @staticmethod
    def _numpy(t: torch.Tensor) -> np.ndarray:
        t = t.detach()
        return t.numpy() if t.device.type == "cpu" else t.cpu().numpy()

    @property
    def data(self) -> np.ndarray:
        return self._numpy(self.tensor)

    @data.setter
    def data(self, value) -> None:
        with torch.no_grad():
            self.tensor.copy_(torch.as_tensor(np.asarray(value, dtype=np.float32)))

    @property
    def diff(self) -> np.ndarray:
        return self._numpy(self.grad)

    @diff.setter
    def diff(self, value) -> None:
        self.grad.copy_(torch.as_tensor(np.asarray(value, dtype=np.float32)))

    # shape ----------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)

    @property
    def count(self) -> int:
        return self.tensor.numel()

    def _legacy(self, i: int) -> int:
        shape = self.shape
        if len(shape) > 4:
            raise ValueError("legacy num/channels/height/width need at most 4 axes")
        return ((1,) * (4 - len(shape)) + shape)[i]

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    def reshape(self, *shape: int) -> None:
        """Give the blob a new shape (zero-filled when the shape changes), like Caffe's Reshape."""
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        shape = tuple(int(d) for d in shape)
        if shape == self.shape:
            return
        if self.is_param:
            raise ValueError("parameter blobs cannot be reshaped")
        t = self.tensor
        self.tensor = torch.zeros(shape, dtype=t.dtype, device=t.device)
        self._grad = None
        self._src = None

    def __repr__(self) -> str:
        return f"Blob(shape={self.shape}, device={self.tensor.device})"
