"""Shared setup for the torch engine tests: few threads (the CI machine has 2 cores), the golden
data location and `run_golden_case`, which runs one golden/layers case as golden/README.md
describes (inputs and parameters fed, forward, top diffs seeded, param diffs cleared,
backward) and returns (meta, golden arrays, our arrays under the golden keys)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from tests.engine.torch.caffe_layers.harness import compare, load_case, run_net_case
from tests.support.paths import GOLDEN

torch.set_num_threads(1)

LAYER_CASES = GOLDEN / "layers"


def run_layer_case(case: str) -> tuple[dict, dict[str, np.ndarray], dict[str, np.ndarray]]:
    from elasticthought.engine.torch.net import Net

    root = LAYER_CASES / case
    meta, arrays = load_case(root)
    return run_net_case(Net(str(root / "net.prototxt"), meta["phase"]), meta, arrays)


@pytest.fixture
def run_golden_case() -> Callable[[str], tuple[int, list[str], dict]]:
    def run(case: str):
        meta, arrays, got = run_layer_case(case)
        checked, failures = compare(meta, arrays, got)
        return checked, failures, meta

    return run
