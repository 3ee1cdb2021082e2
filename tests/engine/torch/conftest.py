"""Shared setup for the torch engine tests: few threads (the CI machine has 2 cores), the golden
data location and `run_golden_case`, which runs one golden/layers case as golden/README.md
describes (inputs and parameters fed, forward, top diffs seeded, param diffs cleared,
backward) and returns (meta, golden arrays, our arrays under the golden keys)."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
import torch

from tests.engine.torch.caffe_layers.harness import run_net_case
from tests.support.paths import GOLDEN

torch.set_num_threads(1)

LAYER_CASES = GOLDEN / "layers"


def run_layer_case(case: str) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    from elasticthought.engine.torch.net import Net

    root = LAYER_CASES / case
    meta = json.loads((root / "meta.json").read_text())
    with np.load(root / "case.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return run_net_case(Net(str(root / "net.prototxt"), meta["phase"]), meta, arrays)


CHECKED = ("output.", "param_after_forward.", "bottom_diff.", "diff.", "param_diff.")


def compare_case(meta: dict, arrays: dict, got: dict) -> tuple[int, list[str]]:
    """(number of arrays checked, failure descriptions) with each array's atol/rtol."""
    failures = []
    checked = 0
    for key, info in meta["arrays"].items():
        if not key.startswith(CHECKED):
            continue
        checked += 1
        want = arrays[key]
        if key not in got:
            failures.append(f"{key}: not produced")
            continue
        actual = got[key]
        if actual.shape != want.shape:
            failures.append(f"{key}: shape {actual.shape}, golden {want.shape}")
            continue
        if not np.allclose(actual, want, rtol=info["rtol"], atol=info["atol"]):
            err = float(np.max(np.abs(actual - want)))
            failures.append(f"{key}: max abs error {err:.3g} > atol {info['atol']}")
    return checked, failures


@pytest.fixture
def run_golden_case() -> Callable[[str], tuple[int, list[str], dict]]:
    def run(case: str):
        meta, arrays, got = run_layer_case(case)
        checked, failures = compare_case(meta, arrays, got)
        return checked, failures, meta

    return run
