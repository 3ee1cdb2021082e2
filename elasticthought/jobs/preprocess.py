"""Image preprocessing of classification: what the training net's data layer did to its input.

An image is decoded as Caffe/OpenCV does (gray unless `color`, colour in BGR order), resized to
`image-width` x `image-height` (bilinear, as the ImageData layer's `new_width`/`new_height`),
scaled by the seed's `scale` (pycaffe's `raw_scale`: 255 keeps the bytes 0-255 that the Data
layer reads; 1 gives 0-1), then the training net's TEST-phase `transform_param` (mean, crop
in the centre, scale) is applied by the engine's own `Transformer`. An image of the test split
therefore reaches the net exactly as the evaluation fed it.

`test_transform(net)` reads that transform from a train/test net; it is a JSON-safe dict
(`scale`, `mean_value`, `crop_size`, `mean_file` when set, plus the data layer's `is_color`,
`new_height`, `new_width` for ImageData) stored on the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from elasticthought.engine.errors import FormatError

DATA_LAYERS = ("Data", "ImageData")


class ImageError(ValueError):
    """One image cannot be used (undecodable, wrong size after cropping, ...)."""


def test_transform(net: Any) -> dict[str, Any] | None:
    """The TEST-phase data layer's transform of a (V2) train/test NetParameter, or None when
    the net has no Data/ImageData layer in TEST."""
    from elasticthought.engine.netstate import filter_net

    for layer in filter_net(net, "TEST").layer:
        if layer.type not in DATA_LAYERS:
            continue
        tp = layer.transform_param
        out: dict[str, Any] = {
            "scale": float(tp.scale),
            "mean_value": [float(v) for v in tp.mean_value],
            "crop_size": int(tp.crop_size),
        }
        if tp.HasField("mean_file"):
            out["mean_file"] = tp.mean_file
        if layer.type == "ImageData":
            p = layer.image_data_param
            out.update(
                is_color=bool(p.is_color), new_height=int(p.new_height), new_width=int(p.new_width)
            )
        return out
    return None


def transform_param(spec: dict[str, Any] | None, mean_path: str | None = None) -> Any:
    """A `TransformationParameter` from a transform dict (`mean_path`: the local mean file)."""
    from elasticthought.engine.proto import caffe_pb2

    param = caffe_pb2.TransformationParameter()
    spec = spec or {}
    param.scale = float(spec.get("scale", 1.0))
    param.crop_size = int(spec.get("crop_size") or 0)
    param.mean_value.extend(float(v) for v in spec.get("mean_value") or [])
    if mean_path:
        param.mean_file = mean_path
    return param


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
            self._transformer = Transformer(
                transform_param(self.transform, self.mean_path), "TEST"
            )
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
