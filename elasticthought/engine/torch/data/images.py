"""Image files as Caffe's ReadImageToCVMat reads them: C x H x W uint8 arrays, colour in BGR.

Decoding is `elasticthought.engine.datum.decode_image`; `resize` is bilinear without
antialiasing (`cv::resize` INTER_LINEAR), rounded to uint8.
"""

from __future__ import annotations

import numpy as np
import torch

from elasticthought.engine.datum import decode_image
from elasticthought.engine.errors import FormatError


class ImageDecodeError(ValueError):
    """A file that cannot be read or is not a readable image."""


def read_image(path: str, height: int = 0, width: int = 0, color: bool | None = True) -> np.ndarray:
    """Read an image file (Caffe's ReadImageToCVMat): optional resize to height x width."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ImageDecodeError(f"Could not open or find file {path}: {exc.strerror}") from None
    try:
        arr = decode_image(data, color)
    except FormatError as exc:
        raise ImageDecodeError(f"{path}: {exc}") from None
    if height > 0 and width > 0:
        arr = resize(arr, height, width)
    return arr


def resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a C x H x W uint8 array (half-pixel centres, no antialiasing)."""
    if arr.shape[1] == height and arr.shape[2] == width:
        return arr
    t = torch.from_numpy(arr.astype(np.float32))[None]
    out = torch.nn.functional.interpolate(
        t, size=(height, width), mode="bilinear", align_corners=False, antialias=False
    )
    return out[0].round_().clamp_(0, 255).to(torch.uint8).numpy()
