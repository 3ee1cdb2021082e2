"""The `ImageData` layer: images named in a list file ("path label" per line).

As in Caffe: the label follows the last space of a line, paths are `root_folder + path`, images
are resized to new_height x new_width when both are set, loaded as 3-channel BGR (`is_color`)
or grayscale, optionally shuffled (seeded; again at every pass over the list), and prefetched
in a background thread.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from elasticthought.engine.torch.data.batches import (
    PrefetchingLayer,
    check_batch_fits,
    layer_seed,
    transform_batch,
)
from elasticthought.engine.torch.data.images import read_image
from elasticthought.engine.torch.data.prefetch import Prefetcher
from elasticthought.engine.torch.layer import register
from elasticthought.engine.torch.transformer import Transformer

log = logging.getLogger("elasticthought.engine")


class ImageListError(ValueError):
    """The list file is missing, empty or has a line without an integer label."""


def read_image_list(path: str) -> list[tuple[str, int]]:
    """(file, label) pairs of a list file; the label is the text after the last space."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ImageListError(f"could not read image list {path}: {exc.strerror}") from None
    lines: list[tuple[str, int]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        name, sep, label = line.rstrip().rpartition(" ")
        try:
            if not sep or not name:
                raise ValueError
            lines.append((name, int(label)))
        except ValueError:
            raise ImageListError(
                f"{path}:{number}: expected '<file> <integer label>', got {line!r}"
            ) from None
    if not lines:
        raise ImageListError(f"image list {path} is empty")
    return lines


@register
class ImageDataLayer(PrefetchingLayer):
    """Caffe's `ImageData` layer (tops: data and optionally label)."""

    type_name = "ImageData"
    is_data = True
    has_backward = False

    def __init__(self, param: Any, phase: str, device: torch.device) -> None:
        super().__init__(param, phase, device)
        p = param.image_data_param
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise ImageListError(f"layer {self.name}: image_data_param.batch_size must be > 0")
        self.height, self.width = int(p.new_height), int(p.new_width)
        if (self.height > 0) != (self.width > 0):
            raise ImageListError("new_height and new_width must be set together")
        self.root = p.root_folder
        self.color = bool(p.is_color)
        self.shuffle = bool(p.shuffle)
        self.with_label = len(param.top) > 1
        self.transformer = Transformer(param.transform_param, phase, seed=layer_seed())
        self.lines = read_image_list(p.source)
        self.rng = np.random.default_rng(layer_seed())
        if self.shuffle:
            self._shuffle()
        self.pos = 0
        if p.rand_skip:
            self.pos = int(self.rng.integers(p.rand_skip)) % len(self.lines)
        first = self._read(self.lines[self.pos][0])
        self.top_shape = (self.batch_size, *self.transformer.output_shape(*first.shape))
        check_batch_fits(f"layer {self.name}", self.top_shape)
        self._prefetch = Prefetcher(self._load_batch, depth=4, name=self.name)

    def _shuffle(self) -> None:
        order = self.rng.permutation(len(self.lines))
        self.lines = [self.lines[i] for i in order]

    def _read(self, name: str) -> np.ndarray:
        return read_image(self.root + name, self.height, self.width, self.color)

    def _load_batch(self) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for _ in range(self.batch_size):
            name, label = self.lines[self.pos]
            images.append(self._read(name))
            labels.append(float(label))
            self.pos += 1
            if self.pos >= len(self.lines):
                log.info("Restarting data prefetching from start.")
                self.pos = 0
                if self.shuffle:
                    self._shuffle()
        return transform_batch(self.transformer, images, labels, f"layer {self.name}")
