"""Paths and helpers shared by the Caffe file-format tests (imported by the test modules)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

SHARED = Path(__file__).resolve().parents[4] / "shared"
if not SHARED.is_dir():
    SHARED = Path("/work/shared")
GOLDEN = SHARED / "golden"
SEED_EXAMPLES = SHARED / "data" / "seed-examples"
FORMATS = GOLDEN / "formats"
IMAGESET = FORMATS / "imageset_png"
LENET = GOLDEN / "lenet" / "lenet_mnist_200"


def copy_tree(src: Path, dest: Path) -> Path:
    """Writable copy of a (read-only) golden folder."""
    shutil.copytree(src, dest)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def folder_digest(path: Path) -> dict[str, str]:
    """name -> sha256 of every file in a folder (to prove a read left it unchanged)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())
    }
