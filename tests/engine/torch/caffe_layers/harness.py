"""Run one per-layer golden case (this folder's `cases/`) on the torch engine and compare it with
what real Caffe produced, following the procedure recorded in the case's meta.json."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch

CASES_DIR = Path(__file__).resolve().parent / "cases"
CHECKED = ("output.", "param_after_forward.", "bottom_diff.", "diff.", "param_diff.")


def case_names() -> list[str]:
    return sorted(p.name for p in CASES_DIR.iterdir() if (p / "meta.json").exists())


def load_case(root: Path) -> tuple[dict, dict[str, np.ndarray]]:
    meta = json.loads((root / "meta.json").read_text())
    with np.load(root / "case.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return meta, arrays


def run_case(root: Path, work: Path, device: str = "cpu") -> tuple[dict, dict, dict]:
    """(meta, golden arrays, our arrays under the golden keys). The case folder is copied to
    `work` first: layers may read files next to the net, relative to the current directory."""
    from elasticthought.engine.torch.net import Net

    meta, arrays = load_case(root)
    shutil.copytree(root, work, dirs_exist_ok=True)
    old = os.getcwd()
    os.chdir(work)
    try:
        return run_net_case(Net("net.prototxt", meta["phase"], device=device), meta, arrays)
    finally:
        os.chdir(old)


def run_net_case(net, meta: dict, arrays: dict) -> tuple[dict, dict, dict]:
    """Load a case's inputs and parameters into `net`, run forward (and backward), and return
    (meta, golden arrays, our arrays under the golden keys)."""
    for name in meta["inputs"]:
        value = arrays[f"input.{name}"]
        if net.blobs[name].data.shape != value.shape:
            net.blobs[name].reshape(*value.shape)
        net.blobs[name].data[...] = value
    for layer, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            blob.data[...] = arrays[f"param.{layer}.{i}"]
    for _ in range(meta.get("forwards", 1)):
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
    net.close()
    return meta, arrays, got


def compare(meta: dict, arrays: dict, got: dict, scale: float = 1.0) -> tuple[int, list[str]]:
    """(number of arrays checked, failures), each array within its atol (times `scale`) and
    rtol."""
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
        if not np.allclose(actual, want, rtol=info["rtol"], atol=info["atol"] * scale):
            err = float(np.max(np.abs(actual - want)))
            failures.append(f"{key}: max abs error {err:.3g} > atol {info['atol'] * scale}")
    return checked, failures


def devices() -> list[str]:
    """cpu, and cuda where a device is present (TF32 off: the tolerances assume IEEE float32)."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return ["cpu", "cuda"]
    return ["cpu"]
