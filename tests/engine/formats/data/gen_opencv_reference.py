"""Regenerate opencv_reference.npz: what OpenCV (the library Caffe decodes and resizes images
with) returns for small seeded inputs. Not run by the tests; needs OpenCV, e.g.

    pip install --target /tmp/cv opencv-python-headless==4.10.0.84
    PYTHONPATH=/tmp/cv python tests/engine/formats/data/gen_opencv_reference.py

Keys: resize.<i>.input (H x W x C uint8), resize.<i>.output (cv2.resize, INTER_LINEAR);
decode.<name>.bytes (the encoded file) and decode.<name>.{unchanged,color,gray}
(cv2.imdecode with IMREAD_UNCHANGED / IMREAD_COLOR / IMREAD_GRAYSCALE, H x W x C).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

RESIZE_CASES = [
    (28, 28, 14, 14),
    (28, 28, 56, 56),
    (28, 28, 20, 20),
    (28, 28, 32, 40),
    (7, 9, 3, 4),
    (33, 47, 19, 60),
    (5, 5, 10, 10),
    (30, 30, 10, 10),
    (31, 31, 15, 15),
    (1, 5, 3, 2),
    (9, 1, 4, 7),
]


def main() -> None:
    rng = np.random.default_rng(20261128)
    out: dict[str, np.ndarray] = {"opencv_version": np.array(cv2.__version__)}
    i = 0
    for h, w, oh, ow in RESIZE_CASES:
        for c in (1, 3):
            img = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
            res = cv2.resize(img, (ow, oh))
            out[f"resize.{i}.input"] = img
            out[f"resize.{i}.output"] = res.reshape(oh, ow, c)
            i += 1
    rgb = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (16, 24), dtype=np.uint8)
    gray = rng.integers(0, 256, (16, 24), dtype=np.uint8)
    yy, xx = np.mgrid[0:16, 0:24]
    smooth = np.stack([xx * 10, yy * 15, (xx + yy) * 6], -1).astype(np.uint8)
    palette = Image.fromarray(rgb).quantize(17)
    palette.info["transparency"] = 3
    images = {
        "png_rgb": (Image.fromarray(rgb), "PNG"),
        "png_rgba": (Image.fromarray(np.dstack([rgb, alpha]), "RGBA"), "PNG"),
        "png_gray": (Image.fromarray(gray), "PNG"),
        "png_gray_alpha": (Image.fromarray(np.dstack([gray, alpha]), "LA"), "PNG"),
        "png_palette": (palette, "PNG"),
        "jpeg_rgb": (Image.fromarray(rgb), "JPEG"),
        "jpeg_smooth": (Image.fromarray(smooth), "JPEG"),
        "jpeg_gray": (Image.fromarray(gray), "JPEG"),
        "bmp_rgb": (Image.fromarray(rgb), "BMP"),
    }
    flags = {
        "unchanged": cv2.IMREAD_UNCHANGED,
        "color": cv2.IMREAD_COLOR,
        "gray": cv2.IMREAD_GRAYSCALE,
    }
    for name, (img, fmt) in images.items():
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        data = np.frombuffer(buf.getvalue(), np.uint8)
        out[f"decode.{name}.bytes"] = data
        for key, flag in flags.items():
            dec = cv2.imdecode(data, flag)
            out[f"decode.{name}.{key}"] = dec if dec.ndim == 3 else dec[..., None]
    np.savez_compressed(Path(__file__).with_name("opencv_reference.npz"), **out)


if __name__ == "__main__":
    main()
