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
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm",
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
        p.name for p in root.iterdir()
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


def resize_bilinear(arr_chw: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize with OpenCV's INTER_LINEAR pixel mapping (half-pixel centres, no
    antialiasing), as Caffe's cv::resize; uint8 results are rounded (may differ by 1 from
    OpenCV's fixed-point arithmetic)."""
    c, h, w = arr_chw.shape
    if (h, w) == (height, width):
        return arr_chw.copy()

    def coords(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        i0 = np.floor(src).astype(np.int64)
        frac = src - i0
        frac[i0 < 0] = 0.0
        i0 = np.clip(i0, 0, n_in - 1)
        i1 = np.clip(i0 + 1, 0, n_in - 1)
        return i0, i1, frac

    y0, y1, fy = coords(height, h)
    x0, x1, fx = coords(width, w)
    src = arr_chw.astype(np.float64)
    rows = src[:, y0, :] * (1 - fy)[None, :, None] + src[:, y1, :] * fy[None, :, None]
    out = rows[:, :, x0] * (1 - fx)[None, None, :] + rows[:, :, x1] * fx[None, None, :]
    if arr_chw.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
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
) -> ImagesetResult:
    """Write the images under `root` into a new LMDB/LevelDB at `out`, as Caffe's
    convert_imageset does.

    `listfile` lines are `<path relative to root> <label>`; without one, `root` holds one folder
    per label (labels = sorted folder-name order). Keys are `%08d_<name>` with the line index.
    `shuffle` permutes the lines first with `random.Random(seed)`. Unreadable images are skipped
    and listed in the result. `progress(done, total)` is called every 1000 records.
    """
    root = Path(root)
    if listfile is not None:
        entries, labels = read_list_file(listfile), []
    else:
        entries, labels = scan_label_folders(root)
    if shuffle:
        random.Random(seed).shuffle(entries)
    result = ImagesetResult(count=0, labels=labels)
    with open_db(out, backend, "w") as db:
        for index, (name, label) in enumerate(entries):
            try:
                datum = image_to_datum(
                    root / name, label, resize_height, resize_width, gray, encoded, encode_type
                )
            except (FormatError, OSError):
                result.skipped.append(name)
                continue
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
