"""Every golden/layers case of real BVLC Caffe: outputs, diffs, parameter diffs and parameters
after forward, each within its meta.json tolerance (the procedure in golden/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from elasticthought.engine.torch.net import Net

CASES_DIR = Path("/work/shared/golden/layers")
CASES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "meta.json").exists())

CHECKED = ("output.", "param_after_forward.", "bottom_diff.", "diff.", "param_diff.")


def test_all_89_cases_present():
    assert len(CASES) == 89


def _run_case(case: str) -> tuple[dict, dict[str, np.ndarray]]:
    root = CASES_DIR / case
    meta = json.loads((root / "meta.json").read_text())
    with np.load(root / "case.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    net = Net(str(root / "net.prototxt"), meta["phase"])
    for name in meta["inputs"]:
        net.blobs[name].data[...] = arrays[f"input.{name}"]
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            blob.data[...] = arrays[f"param.{layer}.{i}"]
    net.forward()
    got: dict[str, np.ndarray] = {}
    for name, blob in net.blobs.items():
        got[f"output.{name}"] = blob.data.copy()
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            got[f"param_after_forward.{layer}.{i}"] = blob.data.copy()
    if not meta["forward_only"]:
        for name in meta["top_diff_blobs"]:
            net.blobs[name].diff[...] = arrays[f"top_diff.{name}"]
        net.clear_param_diffs()
        net.backward()
        for name, blob in net.blobs.items():
            key = "bottom_diff" if name in meta["inputs"] else "diff"
            got[f"{key}.{name}"] = blob.diff.copy()
        for layer, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                got[f"param_diff.{layer}.{i}"] = blob.diff.copy()
    return meta, arrays, got


@pytest.mark.parametrize("case", CASES)
def test_golden_layer_case(case: str):
    meta, arrays, got = _run_case(case)
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
    assert checked, f"{case}: nothing to check"
    assert not failures, f"{case} ({meta['what']}):\n  " + "\n  ".join(failures)
