"""Fixtures for tests of the real-Caffe engine.

Real Caffe lives in the prefix `scripts/install-caffe` builds (Config.caffe_prefix, overridable
with ET_CAFFE_PREFIX) and runs under ET_CAFFE_PYTHON (default /usr/bin/python3). When it is not
importable the tests fail with CI=true and are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from elasticthought.engine.caffe import DEFAULT_PREFIX, DEFAULT_PYTHON, caffe_available

GOLDEN = Path(__file__).resolve().parents[2].parent / "shared" / "golden"
LENET = GOLDEN / "lenet" / "lenet_mnist_200"


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


@pytest.fixture(scope="session")
def caffe_runtime() -> dict[str, str]:
    """{"python", "prefix", "version"} of a working real Caffe, or fail (CI) / skip."""
    python = os.environ.get("ET_CAFFE_PYTHON", DEFAULT_PYTHON)
    prefix = os.environ.get("ET_CAFFE_PREFIX", DEFAULT_PREFIX)
    ok, info = caffe_available(python, prefix)
    if not ok:
        message = f"real Caffe unavailable: {info}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return {"python": python, "prefix": prefix, "version": info}


@pytest.fixture(scope="session")
def lenet_meta() -> dict:
    return json.loads((LENET / "meta.json").read_text())


@pytest.fixture(scope="session")
def lenet_case() -> dict[str, np.ndarray]:
    with np.load(LENET / "case.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture
def lenet_dir(tmp_path: Path) -> Path:
    """A writable copy of the golden LeNet case (LMDBs write lock files when opened)."""
    dst = tmp_path / "lenet"
    shutil.copytree(LENET, dst)
    for path in [dst, *dst.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dst
