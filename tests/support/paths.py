"""Where the project's shared reference data lives: the repository's sibling `../shared`
(as CI lays it out), else `$ET_SHARED`, else /work/shared."""

from __future__ import annotations

import os
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
