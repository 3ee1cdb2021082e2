"""Image sets -> Datum databases (Caffe's convert_imageset) and mean images (compute_image_mean)."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elasticthought.engine.datum import (
    array_to_datum,
    datum_to_array,
    decode_image,
    encode_image,
    parse_datum,
)
from elasticthought.engine.db import open_db
from elasticthought.engine.errors import FormatError

IMAGE_EXTENSIONS = {
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".pgm",
    ".ppm",
    ".pbm",
}


@dataclass
class ImagesetResult:
    """Outcome of `convert_imageset`."""

    count: int
    labels: list[str] = field(default_factory=list)  # folder mode: label index -> folder name
    skipped: list[str] = field(default_factory=list)  # files that could not be read


def read_list_file(path: str | os.PathLike) -> list[tuple[str, int]]:
    """Lines `<file> <label>` (split at the last space, as Caffe does)."""
    entries = []
    with open(path, encoding="utf-8") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            name, sep, label = line.rpartition(" ")
            if not sep or not name:
                raise FormatError("expected '<file> <label>'", line=number, source=str(path))
            try:
                entries.append((name, int(label)))
            except ValueError:
                raise FormatError(
                    f"label {label!r} is not an integer", line=number, source=str(path)
                ) from None
    return entries


def scan_label_folders(root: str | os.PathLike) -> tuple[list[tuple[str, int]], list[str]]:
    """A folder-per-label tree -> (`[("<folder>/<file>", label)]`, folder names).

    Labels are the indexes of the folder names in sorted order; files are taken in sorted
    order (recursively inside each label folder); hidden entries and non-images are skipped.
    """
    root = Path(root)
    folders = sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX"
    )
    if not folders:
        raise FormatError(f"{root}: no label folders (expected one folder per label)")
    entries = []
    for label, folder in enumerate(folders):
        for dirpath, dirnames, filenames in os.walk(root / folder):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                entries.append((rel.replace(os.sep, "/"), label))
    return entries, folders


_COEF_SCALE = 2048  # OpenCV's INTER_RESIZE_COEF_SCALE (11 fractional bits)


def _linear_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    """Source index and float32 fraction per output pixel, as OpenCV computes them."""
    scale = 1.0 / (n_out / n_in)
    f = ((np.arange(n_out, dtype=np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    index = np.floor(f).astype(np.int64)
    return index, (f - index.astype(np.float32)).astype(np.float32)


def _fixed(weights: np.ndarray) -> np.ndarray:
    return np.rint(weights * np.float32(_COEF_SCALE)).astype(np.int64)


def _resize_u8(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV's cv::resize(INTER_LINEAR) for uint8 C x H x W, bit for bit: an exact 2x
    shrink averages 2x2 blocks (its INTER_AREA shortcut); otherwise 11-bit fixed-point
    weights, a horizontal pass, and the vertical pass of its SIMD kernel."""
    c, h, w = arr.shape
    src = arr.astype(np.int64)
    if w == 2 * width and h == 2 * height:
        total = src[:, 0::2, 0::2] + src[:, 0::2, 1::2] + src[:, 1::2, 0::2] + src[:, 1::2, 1::2]
        return ((total + 2) >> 2).astype(np.uint8)
    sx, fx = _linear_taps(width, w)
    fx[sx < 0] = 0
    sx[sx < 0] = 0
    edge = sx >= w - 1
    fx[edge] = 0
    sx[edge] = w - 1
    a0, a1 = _fixed(np.float32(1) - fx), _fixed(fx)
    two_taps = sx + 1 < w
    right = np.minimum(sx + 1, w - 1)
    rows = np.where(
        two_taps[None, None, :],
        src[:, :, sx] * a0 + src[:, :, right] * a1,
        src[:, :, sx] * _COEF_SCALE,
    )
    sy, fy = _linear_taps(height, h)
    b0 = _fixed(np.float32(1) - fy)[None, :, None]
    b1 = _fixed(fy)[None, :, None]
    top = rows[:, np.clip(sy, 0, h - 1), :]
    bottom = rows[:, np.clip(sy + 1, 0, h - 1), :]

    def mul_hi(v: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (np.clip(v >> 4, -32768, 32767) * b) >> 16

    out = (np.clip(mul_hi(top, b0) + mul_hi(bottom, b1), -32768, 32767) + 2) >> 2
    return np.clip(out, 0, 255).astype(np.uint8)


def resize_bilinear(arr_chw: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize C x H x W as Caffe does (cv::resize, INTER_LINEAR): uint8 images match OpenCV
    bit for bit (checked against OpenCV 4.10 and 5.0); other dtypes use the same pixel mapping
    in float64."""
    c, h, w = arr_chw.shape
    if (h, w) == (height, width):
        return arr_chw.copy()
    if arr_chw.dtype == np.uint8:
        return _resize_u8(arr_chw, height, width)
    y, fy = _linear_taps(height, h)
    x, fx = _linear_taps(width, w)
    fy[y < 0], fx[x < 0] = 0, 0
    y0, y1 = np.clip(y, 0, h - 1), np.clip(y + 1, 0, h - 1)
    x0, x1 = np.clip(x, 0, w - 1), np.clip(x + 1, 0, w - 1)
    fy64, fx64 = fy.astype(np.float64), fx.astype(np.float64)
    src = arr_chw.astype(np.float64)
    rows = src[:, y0, :] * (1 - fy64)[None, :, None] + src[:, y1, :] * fy64[None, :, None]
    out = rows[:, :, x0] * (1 - fx64)[None, None, :] + rows[:, :, x1] * fx64[None, None, :]
    return out.astype(arr_chw.dtype)


def _extension_matches(filename: str, encoding: str) -> bool:
    ext = Path(filename).suffix.lower().lstrip(".")
    enc = encoding.lower()
    same = {"jpg": "jpeg", "jpeg": "jpeg", "tif": "tiff", "tiff": "tiff"}
    return same.get(ext, ext) == same.get(enc, enc)


def image_to_datum(
    path: str | os.PathLike,
    label: int,
    resize_height: int = 0,
    resize_width: int = 0,
    gray: bool = False,
    encoded: bool = False,
    encode_type: str = "",
):
    """One image file -> Datum, as Caffe's ReadImageToDatum.

    With `encoded`, the file's own bytes are kept when no resize is asked and the encoding
    (`encode_type`, default: the file's extension) matches the file's extension (Caffe keeps
    them even when `gray` is set); otherwise the decoded (resized) image is re-encoded.
    Without `encoded`, raw C x H x W uint8 bytes (BGR for colour) are stored.
    """
    data = Path(path).read_bytes()
    arr = decode_image(data, color=not gray)
    resize = resize_height > 0 and resize_width > 0
    if encoded:
        encoding = encode_type or Path(path).suffix.lstrip(".")
        if not resize and _extension_matches(str(path), encoding):
            return array_to_datum(None, label, encoded=data)
        if resize:
            arr = resize_bilinear(arr, resize_height, resize_width)
        return array_to_datum(None, label, encoded=encode_image(arr, encoding or "png"))
    if resize:
        arr = resize_bilinear(arr, resize_height, resize_width)
    return array_to_datum(arr, label)


def convert_imageset(
    root: str | os.PathLike,
    listfile: str | os.PathLike | None,
    out: str | os.PathLike,
    backend: str = "lmdb",
    resize_height: int = 0,
    resize_width: int = 0,
    gray: bool = False,
    encoded: bool = False,
    shuffle: bool = False,
    seed: int | None = None,
    encode_type: str = "",
    progress: Callable[[int, int], None] | None = None,
    check_size: bool = False,
) -> ImagesetResult:
    """Write the images under `root` into a new LMDB/LevelDB at `out`, as Caffe's
    convert_imageset does.

    `listfile` lines are `<path relative to root> <label>`; without one, `root` holds one folder
    per label (labels = sorted folder-name order). Keys are `%08d_<name>` with the line index.
    `shuffle` permutes the lines first with `random.Random(seed)`. Unreadable images are skipped
    and listed in the result. `progress(done, total)` is called every 1000 records.
    `check_size` requires every record to have the first record's shape (Caffe's --check_size).
    """
    root = Path(root)
    if listfile is not None:
        entries, labels = read_list_file(listfile), []
    else:
        entries, labels = scan_label_folders(root)
    if shuffle:
        random.Random(seed).shuffle(entries)
    result = ImagesetResult(count=0, labels=labels)
    first_shape = None
    with open_db(out, backend, "w") as db:
        for index, (name, label) in enumerate(entries):
            try:
                datum = image_to_datum(
                    root / name, label, resize_height, resize_width, gray, encoded, encode_type
                )
            except (FormatError, OSError):
                result.skipped.append(name)
                continue
            if check_size:
                shape = datum_to_array(datum)[0].shape
                if first_shape is None:
                    first_shape = shape
                elif shape != first_shape:
                    raise FormatError(
                        f"{name}: image shape {shape} differs from the first image's "
                        f"{first_shape} (check_size)"
                    )
            db.put(f"{index:08d}_{name}", datum.SerializeToString())
            result.count += 1
            if progress and result.count % 1000 == 0:
                progress(result.count, len(entries))
    if progress:
        progress(result.count, len(entries))
    return result


def compute_image_mean(db_path: str | os.PathLike, backend: str | None = None) -> np.ndarray:
    """Mean image (float32 C x H x W) over every Datum, as Caffe's compute_image_mean: a float32
    running sum in key order (encoded records decoded natively) divided by the count."""
    total: np.ndarray | None = None
    count = 0
    with open_db(db_path, backend, "r") as db:
        for key, value in db:
            name = key.decode("utf-8", "replace")
            arr, _ = datum_to_array(parse_datum(value, name))
            arr = arr.astype(np.float32)
            if total is None:
                total = np.zeros_like(arr)
            elif arr.shape != total.shape:
                raise FormatError(
                    f"record {name!r} has shape {arr.shape}, unlike the first {total.shape}"
                )
            total += arr
            count += 1
    if total is None:
        raise FormatError(f"{db_path}: database is empty; no mean to compute")
    return total / np.float32(count)
