"""Where the project's shared reference data lives: the repository's sibling `../shared`
(as CI lays it out), else `$ET_SHARED`, else /work/shared."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def _shared() -> Path:
    env = os.environ.get("ET_SHARED")
    if env:
        return Path(env)
    sibling = Path(__file__).resolve().parents[2].parent / "shared"
    return sibling if sibling.is_dir() else Path("/work/shared")


SHARED = _shared()
GOLDEN = SHARED / "golden"
DATA = SHARED / "data"


def writable_copy(src: Path, dest: Path) -> Path:
    """A writable copy of a (read-only) shared folder: databases write lock and log files."""
    shutil.copytree(src, dest)
    for p in [dest, *dest.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest
