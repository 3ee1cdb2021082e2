"""Shared pieces of the data layers: seeds, batch assembly, the two top tensors and the base
class of the prefetching layers."""

from __future__ import annotations

import contextlib
import contextvars
import math
import resource
from collections.abc import Iterator

import numpy as np
import torch

from elasticthought.engine.torch.data.prefetch import Prefetcher
from elasticthought.engine.torch.layer import Layer
from elasticthought.engine.torch.transformer import Transformer


def layer_seed() -> int:
    """A seed drawn from torch's global generator, so `random_seed` makes data deterministic."""
    return int(torch.randint(0, 2**62, (1,)).item())


class DataShapeError(ValueError):
    """The images of one batch differ in shape (Caffe needs equal shapes or a resize/crop)."""


class BatchTooLarge(ValueError):
    """A data layer's batches cannot fit the process's memory limit, whatever happens."""


_SHAPES_ONLY = contextvars.ContextVar("shapes_only", default=False)


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Data layers built inside are asked for their shapes only (shapes.py): no batch check."""
    token = _SHAPES_ONLY.set(True)
    try:
        yield
    finally:
        _SHAPES_ONLY.reset(token)


def check_batch_fits(where: str, shape: tuple[int, ...], copies: int = 2) -> None:
    """Refuse at setup a batch that can never fit this process's address-space limit
    (RLIMIT_AS, set by whoever runs the engine): `copies` float32 arrays of `shape` (a batch is
    assembled, then transformed) are the least it needs, whatever the rest of the net."""
    if _SHAPES_ONLY.get():
        return
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return
    need = math.prod(int(n) for n in shape) * 4 * copies
    if need > soft:
        raise BatchTooLarge(
            f"{where}: batches of shape {list(shape)} need at least {need} bytes "
            f"({copies} float32 copies), more than the memory limit of {soft} bytes"
        )


def stack_images(images: list[np.ndarray], where: str) -> np.ndarray:
    """Stack C x H x W arrays into N x C x H x W, with a clear error when shapes differ."""
    first = images[0].shape
    for i, img in enumerate(images):
        if img.shape != first:
            raise DataShapeError(
                f"{where}: image {i} of the batch has shape {img.shape}, the first {first}; "
                "set new_height/new_width or crop_size so all images have one size"
            )
    return np.stack(images)


def transform_batch(
    transformer: Transformer, images: list[np.ndarray], labels: list[float], where: str
) -> tuple[np.ndarray, np.ndarray]:
    """(float32 N x C x H x W data, float32 N labels) for a list of images."""
    data = transformer.batch(stack_images(images, where))
    return data, np.asarray(labels, dtype=np.float32)


def to_tops(
    batch: tuple[np.ndarray, np.ndarray], device: torch.device, with_label: bool
) -> list[torch.Tensor]:
    data = torch.from_numpy(batch[0]).to(device)
    if not with_label:
        return [data]
    return [data, torch.from_numpy(batch[1]).to(device)]


def setup_tops(
    shape: tuple[int, ...], device: torch.device, with_label: bool
) -> list[torch.Tensor]:
    """Zero tops of the layer's shapes, for the net's shape pass (no batch is consumed)."""
    tops = [torch.zeros(shape, device=device)]
    if with_label:
        tops.append(torch.zeros(shape[0], device=device))
    return tops


class PrefetchingLayer(Layer):
    """Base of the data layers whose batches a `Prefetcher` thread (`self._prefetch`) makes."""

    _prefetch: Prefetcher
    with_label: bool

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        return to_tops(self._prefetch.get(), self.device, self.with_label)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def close(self) -> None:
        self._prefetch.close()
