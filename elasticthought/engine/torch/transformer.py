"""Caffe's DataTransformer: crop, mirror, mean subtraction and scaling of C x H x W images.

Order and arithmetic follow Caffe: crop (random offsets in TRAIN, centred in TEST) and mirror are
applied to the pixel positions, then `(pixel - mean) * scale` in float32, where the mean is the
`mean_file` image (cropped at the same offsets) or the per-channel `mean_value`s. Randomness
(mirror coin, then crop offsets, per image) comes from a numpy Generator, seeded by the caller.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class TransformError(ValueError):
    """transform_param does not fit the data (mean shape, crop size, channels)."""


def load_mean_file(path: str) -> np.ndarray:
    """The mean image of a `.binaryproto` as a float32 C x H x W array."""
    from elasticthought.engine.caffemodel import read_mean_binaryproto

    mean = np.asarray(read_mean_binaryproto(path), dtype=np.float32)
    if mean.ndim == 4:
        if mean.shape[0] != 1:
            raise TransformError(f"mean file {path} holds {mean.shape[0]} images, expected 1")
        mean = mean[0]
    if mean.ndim != 3:
        raise TransformError(f"mean file {path} has shape {mean.shape}, expected C x H x W")
    return mean


class Transformer:
    """Applies a `TransformationParameter` to images for a net of `phase` ("TRAIN"/"TEST")."""

    def __init__(self, param: Any, phase: str, seed: int | None = None) -> None:
        self.phase = phase
        self.scale = np.float32(param.scale)
        self.crop = int(param.crop_size)
        self.mirror = bool(param.mirror)
        self.force_color = bool(param.force_color)
        self.force_gray = bool(param.force_gray)
        if self.force_color and self.force_gray:
            raise TransformError("force_color and force_gray cannot both be set")
        self.mean: np.ndarray | None = None
        self.mean_values = np.asarray(list(param.mean_value), dtype=np.float32)
        if param.HasField("mean_file"):
            if len(self.mean_values):
                raise TransformError("Cannot specify mean_file and mean_value at the same time")
            self.mean = load_mean_file(param.mean_file)
        self.rng = np.random.default_rng(seed)

    @property
    def is_identity(self) -> bool:
        return (
            self.scale == 1
            and not self.crop
            and not self.mirror
            and self.mean is None
            and not len(self.mean_values)
        )

    def output_shape(self, channels: int, height: int, width: int) -> tuple[int, int, int]:
        """The C x H x W of a transformed image (checks the crop fits)."""
        if self.crop:
            if self.crop > height or self.crop > width:
                raise TransformError(
                    f"crop_size {self.crop} is larger than the image ({height} x {width})"
                )
            return channels, self.crop, self.crop
        return channels, height, width

    def _mean_for(self, channels: int, height: int, width: int) -> np.ndarray | None:
        if self.mean is not None:
            if self.mean.shape != (channels, height, width):
                raise TransformError(
                    f"mean file shape {tuple(self.mean.shape)} does not match the data "
                    f"({channels}, {height}, {width})"
                )
            return self.mean
        if len(self.mean_values):
            values = self.mean_values
            if len(values) == 1:
                values = np.repeat(values, channels)
            elif len(values) != channels:
                raise TransformError(
                    f"Specify either 1 mean_value or as many as channels: {channels} "
                    f"(got {len(values)})"
                )
            return values.reshape(channels, 1, 1)
        return None

    def _offsets(self, height: int, width: int) -> tuple[bool, int, int]:
        mirror = bool(self.mirror and self.rng.integers(2))
        if not self.crop:
            return mirror, 0, 0
        if self.phase == "TRAIN":
            h_off = int(self.rng.integers(height - self.crop + 1))
            w_off = int(self.rng.integers(width - self.crop + 1))
        else:
            h_off = (height - self.crop) // 2
            w_off = (width - self.crop) // 2
        return mirror, h_off, w_off

    def batch(self, images: np.ndarray) -> np.ndarray:
        """Transform an N x C x H x W batch (uint8 or float) into float32."""
        n, c, h, w = images.shape
        self.output_shape(c, h, w)
        mean = self._mean_for(c, h, w)
        random = self.mirror or (self.crop and self.phase == "TRAIN")
        if not random:
            _, h_off, w_off = self._offsets(h, w)
            return self._apply(images, mean, False, h_off, w_off)
        out = np.empty((n, *self.output_shape(c, h, w)), dtype=np.float32)
        for i in range(n):
            mirror, h_off, w_off = self._offsets(h, w)
            out[i] = self._apply(images[i : i + 1], mean, mirror, h_off, w_off)[0]
        return out

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Transform one C x H x W image into float32."""
        return self.batch(image[None])[0]

    def _apply(
        self, images: np.ndarray, mean: np.ndarray | None, mirror: bool, h_off: int, w_off: int
    ) -> np.ndarray:
        size_h = self.crop or images.shape[2]
        size_w = self.crop or images.shape[3]
        data = images[:, :, h_off : h_off + size_h, w_off : w_off + size_w].astype(np.float32)
        if mean is not None:
            if mean.shape[1] > 1 or mean.shape[2] > 1:
                mean = mean[:, h_off : h_off + size_h, w_off : w_off + size_w]
            data -= mean
        if self.scale != 1:
            data *= self.scale
        if mirror:
            data = data[:, :, :, ::-1]
        return np.ascontiguousarray(data)
