"""All 20 golden solver cases of real Caffe: weights, history and loss after every step.

Each case is driven through the pycaffe-like surface as its meta.json `procedure` says: CWD =
a folder with net.prototxt and solver.prototxt, `get_solver`, initial weights written into
`solver.net.params`, inputs written into the Input blobs by name, `solver.step(1)`, and after
every step `solver.snapshot()` whose .solverstate gives the history blobs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from elasticthought.engine.caffemodel import blob_to_array, read_solverstate
from elasticthought.engine.torch.solver import get_solver
from tests.support.paths import SHARED

SOLVERS = SHARED / "golden" / "solvers"
CASES = sorted(p.name for p in SOLVERS.iterdir() if (p / "meta.json").exists())


def _load(name: str) -> tuple[dict, dict]:
    meta = json.loads((SOLVERS / name / "meta.json").read_text())
    with np.load(SOLVERS / name / "case.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    return meta, arrays


def _check(meta: dict, arrays: dict, key: str, actual: np.ndarray, errors: list[str]) -> None:
    want = arrays[key]
    tol = meta["arrays"][key]
    actual = np.asarray(actual).reshape(want.shape)
    if not np.allclose(actual, want, rtol=tol["rtol"], atol=tol["atol"]):
        errors.append(f"{key}: max |diff| {np.abs(actual - want).max():.3g} > atol {tol['atol']}")


def _param_keys(arrays: dict, prefix: str) -> list[tuple[str, str, int]]:
    keys = []
    for k in arrays:
        if k.startswith(prefix + "param."):
            layer, i = k[len(prefix) + 6 :].rsplit(".", 1)
            keys.append((k, layer, int(i)))
    return sorted(keys)


def _history_names(solver) -> list[str]:
    names = [
        f"{layer}.{i}" for layer, blobs in solver.net.params.items() for i in range(len(blobs))
    ]
    sets = len(solver.rule.history) // len(names)
    return [f"{'history' if s == 0 else 'history2'}.{n}" for s in range(sets) for n in names]


def _feed(solver, arrays: dict, prefix: str) -> None:
    for blob in ("data", "label"):
        solver.net.blobs[blob].data = arrays[f"{prefix}input.{blob}"]


def _run_steps(solver, meta, arrays, steps, prefix: str, errors: list[str]) -> list[float]:
    losses = []
    names = _history_names(solver)
    passes: list[str] = []
    if meta["iter_size"] > 1:  # pycaffe's net.before_forward hook: feed each pass's batch
        solver.add_before_forward(lambda: _feed(solver, arrays, passes.pop(0)))
    for s in steps:
        step = f"{prefix}step{s:03d}."
        if meta["iter_size"] == 1:
            _feed(solver, arrays, step)
        else:
            passes[:] = [f"{step}pass{p}." for p in range(meta["iter_size"])]
        solver.step(1)
        assert not passes
        losses.append(solver.smoothed_loss)
        for key, layer, i in _param_keys(arrays, step):
            _check(meta, arrays, key, solver.net.params[layer][i].data, errors)
        _, state_path = solver.snapshot()
        state = read_solverstate(state_path)
        assert state.iter == solver.iter
        for name, blob in zip(names, state.history, strict=True):
            key = f"{step}{name}"
            if key in arrays:
                _check(meta, arrays, key, blob_to_array(blob), errors)
    return losses


def _case_folder(tmp_path: Path, name: str, extra: tuple[str, ...] = ()) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    for f in ("net.prototxt", "solver.prototxt", *extra):
        shutil.copy(SOLVERS / name / f, tmp_path / f)
    return tmp_path


@pytest.mark.parametrize("name", CASES)
def test_golden_solver_case(name, tmp_path, monkeypatch):
    meta, arrays = _load(name)
    monkeypatch.chdir(_case_folder(tmp_path / "run", name))
    solver = get_solver("solver.prototxt")
    for key, layer, i in _param_keys(arrays, "init."):
        solver.net.params[layer][i].data = arrays[key]
    errors: list[str] = []
    losses = _run_steps(solver, meta, arrays, range(1, meta["steps"] + 1), "", errors)
    tol = meta["arrays"]["loss"]
    np.testing.assert_allclose(losses, arrays["loss"], rtol=tol["rtol"], atol=tol["atol"])
    np.testing.assert_allclose(solver.lr, arrays["lr"][-1], rtol=1e-6)
    assert not errors, "\n".join(errors)

    if "snapshot" not in meta:
        return
    after = meta["snapshot"]["after_steps"]
    # Restore real Caffe's snapshot in a fresh solver and continue.
    folder = _case_folder(tmp_path / "restored", name, tuple(meta["snapshot"]["files"]))
    monkeypatch.chdir(folder)
    restored = get_solver("solver.prototxt")
    restored.restore(f"snap_iter_{after}.solverstate")
    assert restored.iter == after
    errors = []
    steps = range(after + 1, meta["steps"] + 1)
    _run_steps(restored, meta, arrays, steps, "restored.", errors)
    assert not errors, "\n".join(errors)
    # Our own snapshot of step `after` restores bit-identically to the uninterrupted run.
    monkeypatch.chdir(tmp_path / "run")
    ours = get_solver("solver.prototxt")
    ours.restore(f"snap_iter_{after}.solverstate")
    for s in steps:
        _feed(ours, arrays, f"step{s:03d}.")
        ours.step(1)
    for layer, blobs in solver.net.params.items():
        for i, blob in enumerate(blobs):
            np.testing.assert_array_equal(ours.net.params[layer][i].data, blob.data)
