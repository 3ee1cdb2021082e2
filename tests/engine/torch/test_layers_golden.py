"""Every golden/layers case of real BVLC Caffe: outputs, diffs, parameter diffs and parameters
after forward, each within its meta.json tolerance (the procedure in golden/README.md; the
harness is `run_golden_case` in conftest.py)."""

from __future__ import annotations

import pytest

from tests.support.paths import GOLDEN

LAYER_CASES = GOLDEN / "layers"
CASES = sorted(p.name for p in LAYER_CASES.iterdir() if (p / "meta.json").exists())


def test_all_89_cases_present():
    assert len(CASES) == 89


@pytest.mark.parametrize("case", CASES)
def test_golden_layer_case(case: str, run_golden_case):
    checked, failures, meta = run_golden_case(case)
    assert checked, f"{case}: nothing to check"
    assert not failures, f"{case} ({meta['what']}):\n  " + "\n  ".join(failures)
