"""BVLC Caffe's own siamese example (`examples/siamese/mnist_siamese_train_test.prototxt`, read
from the Caffe source tree at test time, unchanged) trains through `elasticthought train` with
real Caffe's loss at every iteration, and the caffemodel it writes loads in real Caffe and
computes the same features there.

Data: pair LevelDBs in the example's layout (2-channel 28x28 datums, label 1 = same digit) made
from the golden MNIST LMDBs; the solver is the example's with a short schedule (the only edits:
max_iter, display, test_interval/test_iter, snapshot, solver_mode CPU). Both engines start from
the same init.caffemodel (the torch engine's seeded Xavier fill).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from elasticthought.engine.caffe import caffe_env, train
from elasticthought.engine.datum import array_to_datum
from elasticthought.engine.db import iter_datums, open_db
from elasticthought.engine.logparse import parse_log
from elasticthought.engine.prototxt import read_solver, write_text
from tests.caffe.conftest import LENET
from tests.caffe.source_tree import caffe_source  # noqa: F401  (fixture)

pytestmark = [pytest.mark.caffe, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
ITERATIONS = 40
EXAMPLE = "examples/siamese"


def _pairs(lmdb: Path, dest: Path, count: int, seed: int) -> None:
    """`count` random image pairs as 2-channel datums, label 1 when both show the same digit
    (what the example's convert_mnist_siamese_data does), into a new LevelDB."""
    images, labels = [], []
    for _, arr, label in iter_datums(lmdb):
        images.append(arr)
        labels.append(label)
    rng = np.random.RandomState(seed)
    with open_db(dest, "leveldb", "w") as db:
        for k in range(count):
            i, j = rng.randint(0, len(images), size=2)
            pair = np.concatenate([images[i], images[j]]).astype(np.uint8)
            db.put(
                f"{k:08d}", array_to_datum(pair, int(labels[i] == labels[j])).SerializeToString()
            )


@pytest.fixture(scope="module")
def siamese_job(tmp_path_factory, caffe_source) -> Path:  # noqa: F811
    """A work folder laid out as the Caffe source tree: the example's net (unchanged), a short
    solver, pair LevelDBs and init.caffemodel."""
    from elasticthought.engine.torch.net import Net

    work = tmp_path_factory.mktemp("siamese")
    example = work / EXAMPLE
    example.mkdir(parents=True)
    source = Path(caffe_source) / EXAMPLE
    for name in ("mnist_siamese_train_test.prototxt", "mnist_siamese.prototxt"):
        (example / name).write_bytes((source / name).read_bytes())
    solver = read_solver(source / "mnist_siamese_solver.prototxt")
    solver.max_iter = ITERATIONS
    solver.display = 1
    solver.test_interval = ITERATIONS // 2
    solver.test_iter[:] = [2]
    solver.snapshot = 0
    solver.solver_mode = solver.CPU
    write_text(solver, example / "solver.prototxt")
    _pairs(LENET / "mnist_train_lmdb", example / "mnist_siamese_train_leveldb", 64 * ITERATIONS, 1)
    _pairs(LENET / "mnist_test_lmdb", example / "mnist_siamese_test_leveldb", 200, 2)
    import torch

    torch.manual_seed(18)
    old = Path.cwd()
    os.chdir(work)
    try:
        net = Net(EXAMPLE + "/mnist_siamese_train_test.prototxt", "TRAIN")
        net.save(work / "init.caffemodel")
        net.close()
    finally:
        os.chdir(old)
    return work


def _ours(work: Path) -> tuple[np.ndarray, Path]:
    """Train with `elasticthought train` (a child process, CWD = work); (loss per iteration,
    the final caffemodel)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "elasticthought",
            "train",
            "--solver",
            EXAMPLE + "/solver.prototxt",
            "--weights",
            "init.caffemodel",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = parse_log(done.stderr).train
    losses = np.array([r["loss"] for r in rows])
    assert [r["NumIters"] for r in rows] == list(range(ITERATIONS))
    written = work / f"{EXAMPLE}/mnist_siamese_iter_{ITERATIONS}.caffemodel"
    assert written.exists(), sorted(p.name for p in (work / EXAMPLE).iterdir())
    model = work / "torch_final.caffemodel"  # real Caffe's run writes the same snapshot name
    written.rename(model)
    return losses, model


def _caffe_losses(work: Path, runtime: dict, logs: Path) -> np.ndarray:
    """Real Caffe's loss at every iteration of the same job (its log goes to `logs`)."""
    logs.mkdir()
    iterations: list[dict] = []
    result = train(
        EXAMPLE + "/solver.prototxt",
        work,
        weights="init.caffemodel",
        on_iteration=iterations.append,
        python=runtime["python"],
        prefix=runtime["prefix"],
        log_path=logs / "caffe.log",
    )
    assert result.state == "finished", result
    assert [e["iteration"] for e in iterations] == list(range(ITERATIONS))
    return np.array([e["loss"] for e in iterations])


def _caffe_features(runtime: dict, deploy: Path, model: Path, images: np.ndarray) -> np.ndarray:
    """Real Caffe's `feat` output of the example's deploy net with `model`'s weights."""
    script = (
        "import sys, json, numpy as np, caffe\n"
        "caffe.set_mode_cpu()\n"
        "net = caffe.Net(sys.argv[1], sys.argv[2], caffe.TEST)\n"
        "x = np.load(sys.argv[3])\n"
        "net.blobs['data'].reshape(*x.shape)\n"
        "net.blobs['data'].data[...] = x\n"
        "np.save(sys.argv[4], net.forward()['feat'])\n"
    )
    out = model.parent / "caffe_feat.npy"
    np.save(model.parent / "images.npy", images)
    done = subprocess.run(
        [
            runtime["python"],
            "-c",
            script,
            str(deploy),
            str(model),
            str(model.parent / "images.npy"),
            str(out),
        ],
        env=caffe_env(runtime["prefix"]),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(out)


def test_siamese_example_trains_like_caffe_and_its_model_loads_in_caffe(
    siamese_job: Path, caffe_runtime, tmp_path: Path, monkeypatch
):
    from elasticthought.engine.torch.net import Net

    ours, model = _ours(siamese_job)

    theirs = _caffe_losses(siamese_job, caffe_runtime, tmp_path / "caffe")
    # The same job on real Caffe with another OpenBLAS kernel set (another float32 summation
    # order): how far float32 noise alone moves the curve as SGD amplifies it.
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Prescott")
    variant = _caffe_losses(siamese_job, caffe_runtime, tmp_path / "caffe_prescott")
    assert theirs.shape == variant.shape == ours.shape == (ITERATIONS,)
    noise = np.maximum.accumulate(np.abs(theirs - variant))
    atol = np.maximum(10 * noise, 1e-5 * np.abs(theirs))
    diff = np.abs(ours - theirs)
    assert np.all(diff <= atol), json.dumps(
        [
            (int(i), float(ours[i]), float(theirs[i]), float(atol[i]))
            for i in np.flatnonzero(diff > atol)
        ]
    )
    assert theirs[-5:].mean() < theirs[:5].mean()  # it learns

    # the torch engine's caffemodel in real Caffe: the same embedding as in the torch engine
    images = np.stack([arr for _, arr, _ in iter_datums(LENET / "mnist_test_lmdb")][:20])
    images = images.astype(np.float32) * 0.00390625
    deploy = siamese_job / EXAMPLE / "mnist_siamese.prototxt"
    caffe_feat = _caffe_features(caffe_runtime, deploy, model, images)
    net = Net(str(deploy), "TEST", weights=str(model))
    net.blobs["data"].reshape(*images.shape)
    torch_feat = net.forward(data=images)["feat"]
    assert caffe_feat.shape == torch_feat.shape == (20, 2)
    np.testing.assert_allclose(torch_feat, caffe_feat, rtol=1e-4, atol=1e-5)
    # and the other way: real Caffe's trained caffemodel in the torch engine
    caffe_model = siamese_job / f"{EXAMPLE}/mnist_siamese_iter_{ITERATIONS}.caffemodel"
    caffe_feat = _caffe_features(caffe_runtime, deploy, caffe_model, images)
    net.copy_from(str(caffe_model))
    np.testing.assert_allclose(net.forward(data=images)["feat"], caffe_feat, rtol=1e-4, atol=1e-5)
