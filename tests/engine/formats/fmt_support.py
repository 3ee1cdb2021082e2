"""Paths and helpers shared by the Caffe file-format tests (imported by the test modules)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.paths import SHARED, writable_copy

GOLDEN = SHARED / "golden"
SEED_EXAMPLES = SHARED / "data" / "seed-examples"
FORMATS = GOLDEN / "formats"
IMAGESET = FORMATS / "imageset_png"
LENET = GOLDEN / "lenet" / "lenet_mnist_200"


copy_tree = writable_copy  # a writable copy of a (read-only) golden folder


def folder_digest(path: Path) -> dict[str, str]:
    """name -> sha256 of every file in a folder (to prove a read left it unchanged)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}
