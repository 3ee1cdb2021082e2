"""Fixtures for the Caffe file-format tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.formats.fmt_support import copy_tree


@pytest.fixture
def copy_db(tmp_path):
    """copy_db(path) -> a writable copy of a golden database folder inside tmp_path."""

    def copy(path: Path) -> Path:
        return copy_tree(Path(path), tmp_path / f"copy-{Path(path).name}")

    return copy
