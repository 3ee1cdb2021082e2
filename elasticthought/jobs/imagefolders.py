"""IMAGE_DATA datafiles: one folder per label holding images Pillow opens."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elasticthought.documents.errors import JobError
from elasticthought.engine.datum import too_many_pixels


@dataclass
class ImageSet:
    """Images by label, each label's files in archive order (paths relative to `root`)."""

    root: Path
    labels: list[str]
    files: dict[str, list[str]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {label: len(self.files[label]) for label in self.labels}


def _ignored(rel: str) -> bool:
    parts = rel.split("/")
    return parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def sort_labels(labels: set[str]) -> list[str]:
    """Label order: numeric when every name is an integer, else by name."""
    if labels and all(label.isdigit() for label in labels):
        return sorted(labels, key=lambda label: (int(label), label))
    return sorted(labels)


def scan(root: Path, files: list[str], verify: bool = True) -> ImageSet:
    """Group extracted `files` (archive order) by label folder; check each opens as an image."""
    names = [f for f in files if not _ignored(f)]
    if not names:
        raise JobError("the archive holds no images: expected one folder per label")
    split = [n.split("/") for n in names]
    if all(len(p) == 3 for p in split) and len({p[0] for p in split}) == 1:
        base = split[0][0] + "/"  # a single wrapping folder: labels are one level down
        split = [p[1:] for p in split]
    else:
        base = ""
    by_label: dict[str, list[str]] = {}
    for parts in split:
        rel = "/".join(parts)
        if len(parts) != 2:
            raise JobError(
                f"{base + rel!r} is not directly inside a label folder: an IMAGE_DATA archive "
                "holds one folder per label, each holding images"
            )
        by_label.setdefault(parts[0], []).append(base + rel)
    if verify:
        from PIL import Image, UnidentifiedImageError
        from PIL.Image import DecompressionBombError

        for rels in by_label.values():
            for rel in rels:
                try:
                    with Image.open(root / rel) as image:
                        width, height = image.size
                        image.verify()
                except (
                    UnidentifiedImageError, OSError, SyntaxError, ValueError, DecompressionBombError
                ) as exc:  # fmt: skip
                    reason = str(exc).replace(str(root / rel), rel).replace(str(root), ".")
                    raise JobError(f"{rel!r} is not an image Pillow can open: {reason}") from None
                too_many = too_many_pixels(width, height)
                if too_many:
                    raise JobError(f"{rel!r} is {too_many}")
    labels = sort_labels(set(by_label))
    return ImageSet(root=root, labels=labels, files={label: by_label[label] for label in labels})


def load_pixels(path: Path, gray: bool) -> np.ndarray:
    """An image as float64 (C, H, W): gray (1 channel) or BGR (Caffe's order)."""
    from PIL import Image

    with Image.open(path) as image:
        if gray:
            return np.asarray(image.convert("L"), dtype=np.float64)[None]
        rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
        return rgb[:, :, ::-1].transpose(2, 0, 1)


def is_gray(path: Path) -> bool:
    from PIL import Image

    with Image.open(path) as image:
        return image.mode in ("1", "L", "LA", "I", "I;16", "F")
