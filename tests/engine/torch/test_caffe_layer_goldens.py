"""The layers added for issue 18 against real BVLC Caffe: every case under
caffe_layers/cases (made by scripts/make-layer-goldens) -- forward outputs, bottom and
intermediate diffs and parameter diffs within each array's tolerance -- on CPU, and on CUDA
where a device is present. One more test regenerates a few cases with real Caffe at test time
and checks that the committed files are what Caffe produces (fails with CI=true when Caffe is
missing, skips otherwise)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.caffe.conftest import caffe_runtime  # noqa: F401  (fixture)
from tests.engine.torch.caffe_layers import specs
from tests.engine.torch.caffe_layers.harness import (
    CASES_DIR,
    case_names,
    compare,
    devices,
    load_case,
    run_case,
)

REPO = Path(__file__).resolve().parents[3]
CASES = case_names()


def test_every_spec_has_a_committed_case():
    assert sorted(c["case"] for c in specs.CASES) == CASES


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("case", CASES)
def test_caffe_layer_case(case: str, device: str, tmp_path: Path):
    meta, arrays, got = run_case(CASES_DIR / case, tmp_path / case, device)
    checked, failures = compare(meta, arrays, got)
    assert checked, f"{case}: nothing to check"
    assert not failures, f"{case} ({meta['what']}) on {device}:\n  " + "\n  ".join(failures)


#: a few cases of different families are enough to show the committed files are reproducible
REGENERATED = [
    "contrastive_weight3_propagate_down",
    "mvn_eps_large",
    "infogain_source",
    "filter_two_bottoms",
    "spp_ave_h2_odd",
    "lstm_state_carries_over",
    "rnn_static_expose",
]


@pytest.mark.caffe
def test_committed_cases_are_what_real_caffe_produces(tmp_path: Path, caffe_runtime):  # noqa: F811
    env = dict(
        os.environ, ET_CAFFE_PREFIX=caffe_runtime["prefix"], ET_CAFFE_PYTHON=caffe_runtime["python"]
    )
    env.pop("PYTHONPATH", None)
    cases = [c for c in REGENERATED if c in CASES]
    done = subprocess.run(
        [str(REPO / "scripts" / "make-layer-goldens"), "--out", str(tmp_path), *cases],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for case in cases:
        meta, committed = load_case(CASES_DIR / case)
        _, fresh = load_case(tmp_path / case)
        assert sorted(fresh) == sorted(committed)
        for key, value in committed.items():
            info = meta["arrays"].get(key, {"atol": 0.0, "rtol": 0.0})
            assert np.allclose(fresh[key], value, rtol=info["rtol"], atol=info["atol"]), key
