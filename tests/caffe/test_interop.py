"""Models and snapshots move between real Caffe and the torch engine, and both train alike.

One LeNet job (golden init.caffemodel, golden LMDBs, 200 iterations, snapshots at 100 and 200)
runs once on each engine (module fixtures); the tests then cross the files over.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from elasticthought.engine.caffe import classify, train
from elasticthought.engine.caffemodel import blob_to_array, read_caffemodel, read_solverstate
from elasticthought.engine.torch.net import Net
from elasticthought.engine.torch.solver import get_solver
from tests.caffe.conftest import LENET, copy_case

pytestmark = [pytest.mark.caffe, pytest.mark.slow]
RESUME_STEPS = 20


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        os.chdir(old)


def _torch_losses(solver, run) -> list[tuple[int, float]]:
    losses: list[tuple[int, float]] = []
    solver.callback = lambda e: e["event"] == "train" and losses.append((e["iteration"], e["loss"]))
    run()
    solver.close()
    return losses


@pytest.fixture(scope="module")
def torch_run(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The LeNet job on the torch engine: (its folder, loss of iterations 0..199)."""
    folder = copy_case(tmp_path_factory.mktemp("torch") / "lenet")
    with _cwd(folder):
        solver = get_solver("lenet_solver.prototxt")
        solver.load_weights("init.caffemodel")
        losses = _torch_losses(solver, solver.solve)
    assert [i for i, _ in losses] == list(range(200))
    return folder, np.array([loss for _, loss in losses])


@pytest.fixture(scope="module")
def caffe_run(caffe_lenet_run) -> tuple[Path, np.ndarray]:
    """The same job on real Caffe: (its folder, loss of iterations 0..199)."""
    run = caffe_lenet_run
    assert run.result.state == "finished" and run.result.iteration == 200
    return run.folder, np.array([e["loss"] for e in run.iterations])


def test_same_job_trains_alike_on_both_engines(torch_run, caffe_run, lenet_meta, lenet_case):
    atol = np.array(lenet_meta["train_loss_atol_per_iteration"])
    ours, theirs = torch_run[1], caffe_run[1]
    assert ours.shape == theirs.shape == (200,)
    diff = np.abs(ours - theirs)
    assert np.all(diff <= atol), [(int(i), diff[i], atol[i]) for i in np.flatnonzero(diff > atol)]
    # and real Caffe here is the golden build: its curve is the golden one
    assert np.all(np.abs(theirs - lenet_case["train_loss"]) <= atol)


def _torch_probs(model: Path, images: np.ndarray) -> np.ndarray:
    net = Net(str(LENET / "deploy.prototxt"), "TEST", weights=str(model))
    return np.array(net.forward(data=images)["prob"], dtype=np.float32)


def _caffe_probs(model: Path, images: np.ndarray, runtime: dict) -> np.ndarray:
    out = classify(
        LENET / "deploy.prototxt",
        model,
        images,
        blobs=["prob"],
        python=runtime["python"],
        prefix=runtime["prefix"],
    )
    return out["prob"]


@pytest.mark.parametrize("trained_by", ["torch", "caffe"])
def test_trained_model_gives_same_probabilities_in_both_engines(
    trained_by, torch_run, caffe_run, caffe_runtime, lenet_case
):
    folder = (torch_run if trained_by == "torch" else caffe_run)[0]
    model = folder / "lenet_iter_200.caffemodel"
    images = lenet_case["deploy_input"]
    assert images.shape[0] == 20
    ours = _torch_probs(model, images)
    theirs = _caffe_probs(model, images, caffe_runtime)
    assert ours.shape == theirs.shape == (20, 10)
    assert np.abs(ours - theirs).max() <= 1e-4
    # a trained model, not a uniform one: most of the 20 digits are recognised
    assert (theirs.argmax(1) == lenet_case["deploy_labels"]).mean() >= 0.8


def _weights(path: Path) -> list[np.ndarray]:
    from elasticthought.engine.caffemodel import caffemodel_params

    return [a for arrays in caffemodel_params(read_caffemodel(path)).values() for a in arrays]


@pytest.mark.parametrize("written_by", ["torch", "caffe"])
def test_solverstate_resumes_in_the_other_engine(
    written_by, torch_run, caffe_run, caffe_runtime, lenet_meta, tmp_path
):
    """Both engines resume the same .solverstate (iteration 100) for 20 steps: same iteration
    numbering, same lr schedule, same weights and history restored, same losses."""
    src = (torch_run if written_by == "torch" else caffe_run)[0]
    folder = copy_case(tmp_path / "lenet")
    for ext in ("caffemodel", "solverstate"):
        shutil.copy(src / f"lenet_iter_100.{ext}", folder / f"lenet_iter_100.{ext}")
    state = read_solverstate(folder / "lenet_iter_100.solverstate")
    assert state.iter == 100 and state.learned_net == "lenet_iter_100.caffemodel"

    events: list[dict] = []
    result = train(
        "lenet_solver.prototxt",
        folder,
        snapshot="lenet_iter_100.solverstate",
        iterations=RESUME_STEPS,
        on_iteration=events.append,
        python=caffe_runtime["python"],
        prefix=caffe_runtime["prefix"],
    )
    assert result.iteration == 100 + RESUME_STEPS
    assert [e["iteration"] for e in events] == list(range(100, 100 + RESUME_STEPS))
    caffe_losses = np.array([e["loss"] for e in events])

    with _cwd(folder):
        solver = get_solver("lenet_solver.prototxt")
        solver.restore("lenet_iter_100.solverstate")
        assert solver.iter == 100
        restored = [p.data for name in solver.net.params for p in solver.net.params[name]]
        for ours, saved in zip(
            restored, _weights(folder / "lenet_iter_100.caffemodel"), strict=True
        ):
            np.testing.assert_array_equal(np.asarray(ours).reshape(-1), saved.reshape(-1))
        history = [h.detach().cpu().numpy().reshape(-1) for h in solver.rule.history]
        assert len(history) == len(state.history) == len(restored)
        for ours, blob in zip(history, state.history, strict=True):
            np.testing.assert_array_equal(ours, blob_to_array(blob).reshape(-1))
        losses = _torch_losses(solver, lambda: solver.step(RESUME_STEPS))
    assert [i for i, _ in losses] == list(range(100, 100 + RESUME_STEPS))
    torch_losses = np.array([loss for _, loss in losses])
    lr = [e["lr"] for e in events]
    np.testing.assert_allclose(
        lr, [0.01 * (1 + 1e-4 * i) ** -0.75 for i in range(100, 120)], rtol=1e-6
    )
    # a fresh start from identical weights and history: the first steps agree tightly
    atol = np.array(lenet_meta["train_loss_atol_per_iteration"])[:RESUME_STEPS]
    diff = np.abs(torch_losses - caffe_losses)
    assert np.all(diff <= atol + 1e-5 * np.abs(caffe_losses)), diff
