"""Image preprocessing of classification: what the training net's data layer did to its input.

An image is decoded as Caffe/OpenCV does (gray unless `color`, colour in BGR order), resized to
`image-width` x `image-height` (bilinear, as the ImageData layer's `new_width`/`new_height`),
scaled by the seed's `scale` (pycaffe's `raw_scale`: 255 keeps the bytes 0-255 that the Data
layer reads; 1 gives 0-1), then the training net's TEST-phase `transform_param` (mean, crop
in the centre, scale) is applied by the engine's own `Transformer`. An image of the test split
therefore reaches the net exactly as the evaluation fed it.

The transform is `engine.transform`'s (`test_transform(net)`, a JSON-safe dict stored on the
classifier; `transform_param` turns it back into Caffe's message).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from elasticthought.engine.errors import FormatError
from elasticthought.engine.transform import transform_param


class ImageError(ValueError):
    """One image cannot be used (undecodable, wrong size after cropping, ...)."""


@dataclass
class Preprocessor:
    """Bytes -> the net's input array, for one classifier."""

    raw_scale: float
    width: int
    height: int
    color: bool
    transform: dict[str, Any] = field(default_factory=dict)
    mean_path: str | None = None

    def __post_init__(self) -> None:
        from elasticthought.engine.torch.transformer import Transformer, TransformError

        try:
            self._transformer = Transformer(transform_param(self.transform, self.mean_path), "TEST")
        except (TransformError, FormatError) as exc:
            raise ImageError(f"the classifier's transform cannot be used: {exc}") from None

    def output_shape(self) -> tuple[int, int, int]:
        """C x H x W of what `__call__` returns."""
        channels = 3 if self.color else 1
        return self._transformer.output_shape(channels, self.height, self.width)

    def load(self, data: bytes) -> np.ndarray:
        """Decode, resize and apply `raw_scale`: C x H x W (uint8 when raw_scale is 255)."""
        from elasticthought.engine.datum import decode_image
        from elasticthought.engine.torch.data.images import resize

        try:
            image = decode_image(data, bool(self.color))
        except FormatError as exc:
            raise ImageError(str(exc)) from None
        if image.shape[1:] != (self.height, self.width):
            image = resize(image, self.height, self.width)
        if self.raw_scale != 255:
            image = image.astype(np.float32) * np.float32(self.raw_scale / 255.0)
        return image

    def __call__(self, data: bytes) -> np.ndarray:
        """One image's bytes as the net's float32 input (C x H x W)."""
        from elasticthought.engine.torch.transformer import TransformError

        image = self.load(data)
        try:
            return self._transformer(image)
        except TransformError as exc:
            raise ImageError(str(exc)) from None
