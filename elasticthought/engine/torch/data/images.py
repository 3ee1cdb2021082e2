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


#: Images of at least this many pixels are resized one channel at a time (see `resize`).
_CHANNEL_AT_A_TIME_PIXELS = 1 << 20


def resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a C x H x W uint8 array (half-pixel centres, no antialiasing). A
    large image goes one channel at a time, so its float copy is one channel's (the numbers
    are the same either way: checked on random images)."""
    if arr.shape[1] == height and arr.shape[2] == width:
        return arr
    step = 1 if arr[0].size >= _CHANNEL_AT_A_TIME_PIXELS else arr.shape[0]
    out = np.empty((arr.shape[0], height, width), np.uint8)
    for c in range(0, arr.shape[0], step):
        t = torch.from_numpy(arr[c : c + step].astype(np.float32))[None]
        scaled = torch.nn.functional.interpolate(
            t, size=(height, width), mode="bilinear", align_corners=False, antialias=False
        )
        out[c : c + step] = scaled[0].round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out
