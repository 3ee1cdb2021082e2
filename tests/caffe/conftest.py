"""Fixtures for tests of the real-Caffe engine.

Real Caffe lives in the prefix `scripts/install-caffe` builds (Config.caffe_prefix, overridable
with ET_CAFFE_PREFIX) and runs under ET_CAFFE_PYTHON (default /usr/bin/python3). When it is not
importable the tests fail with CI=true and are skipped otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from elasticthought.engine.caffe import (
    DEFAULT_PREFIX,
    DEFAULT_PYTHON,
    TrainResult,
    caffe_available,
    train,
)
from tests.support.paths import GOLDEN

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


def copy_case(dst: Path) -> Path:
    """A writable copy of the golden LeNet case at `dst` (LMDBs write lock files when opened)."""
    shutil.copytree(LENET, dst)
    for path in [dst, *dst.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dst


@pytest.fixture
def lenet_dir(tmp_path: Path) -> Path:
    return copy_case(tmp_path / "lenet")


@dataclass
class CaffeRun:
    folder: Path
    result: TrainResult
    iterations: list[dict]  # on_iteration events
    progress: list[dict]  # callback events (the torch engine's shapes)
    lines: list[str]  # log lines


@pytest.fixture(scope="session")
def caffe_lenet_run(tmp_path_factory, caffe_runtime) -> CaffeRun:
    """The golden LeNet job (init.caffemodel, 200 iterations) trained once by real Caffe."""
    folder = copy_case(tmp_path_factory.mktemp("caffe") / "lenet")
    run = CaffeRun(folder, None, [], [], [])  # type: ignore[arg-type]
    run.result = train(
        "lenet_solver.prototxt",
        folder,
        weights="init.caffemodel",
        on_iteration=run.iterations.append,
        callback=run.progress.append,
        log=run.lines.append,
        python=caffe_runtime["python"],
        prefix=caffe_runtime["prefix"],
    )
    return run
