"""HDF5 with real Caffe: HDF5Data batches (file lists, moving between files, wrapping),
HDF5Output files, and `snapshot_format: HDF5` weights and solver states crossing between the
engines -- a run restored on the other engine continues exactly like one that stays."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from elasticthought.engine.prototxt import parse_solver
from elasticthought.engine.torch.net import Net
from elasticthought.engine.torch.solver import Solver
from tests.caffe.pycaffe_script import run_pycaffe

pytestmark = [pytest.mark.caffe]

DATA_NET = """
name: "h5"
layer {{ name: "data" type: "HDF5Data" top: "x" top: "y"
        hdf5_data_param {{ source: "list.txt" batch_size: {batch} }} }}
layer {{ name: "silence" type: "Silence" bottom: "x" bottom: "y" }}
"""


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _write_files(folder: Path) -> None:
    """Two files of 5 and 3 rows: x float (rows, 2, 3), y integer (rows,)."""
    rng = np.random.RandomState(7)
    names = []
    for k, rows in enumerate((5, 3)):
        name = f"part{k}.h5"
        with h5py.File(folder / name, "w") as f:
            f.create_dataset("x", data=rng.normal(size=(rows, 2, 3)).astype(np.float32))
            f.create_dataset("y", data=np.arange(rows, dtype=np.int32) + 10 * k)
        names.append(name)
    (folder / "list.txt").write_text("\n".join(names) + "\n")


def test_hdf5_data_batches_follow_caffe(tmp_path: Path, caffe_runtime):
    _write_files(tmp_path)
    (tmp_path / "net.prototxt").write_text(DATA_NET.format(batch=3))
    script = (
        "net = caffe.Net('net.prototxt', caffe.TRAIN)\n"
        "out = {}\n"
        "for i in range(5):\n"
        "    net.forward()\n"
        "    out['x%d' % i] = net.blobs['x'].data.copy()\n"
        "    out['y%d' % i] = net.blobs['y'].data.copy()\n"
        "np.savez('caffe.npz', **out)\n"
    )
    run_pycaffe(caffe_runtime, script, tmp_path)
    want = np.load(tmp_path / "caffe.npz")
    with _cwd(tmp_path):
        net = Net("net.prototxt", "TRAIN")
        for i in range(5):
            net.forward()
            np.testing.assert_array_equal(net.blobs["x"].data, want[f"x{i}"])
            np.testing.assert_array_equal(net.blobs["y"].data, want[f"y{i}"])
        net.close()
    # 5 batches of 3 over 5 + 3 rows: file boundaries inside batches and a wrap-around
    assert list(want["y2"]) == [11, 12, 0]


def test_hdf5_output_writes_what_caffe_writes(tmp_path: Path, caffe_runtime):
    text = """
    layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 3 dim: 4 } } }
    layer { name: "b" type: "Input" top: "b" input_param { shape { dim: 3 } } }
    layer { name: "out" type: "HDF5Output" bottom: "a" bottom: "b"
            hdf5_output_param { file_name: "out.h5" } }
    """
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.array([1, 2, 3], np.float32)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    for engine in ("caffe", "torch"):
        folder = tmp_path / engine
        folder.mkdir()
        (folder / "net.prototxt").write_text(text)
        if engine == "caffe":
            script = (
                "net = caffe.Net('net.prototxt', caffe.TEST)\n"
                "net.blobs['a'].data[...] = np.load('../a.npy')\n"
                "net.blobs['b'].data[...] = np.load('../b.npy')\n"
                "net.forward()\n"
                "del net\n"
            )
            run_pycaffe(caffe_runtime, script, folder)
        else:
            with _cwd(folder):
                net = Net("net.prototxt", "TEST")
                net.forward(a=a, b=b)
                net.close()
    with h5py.File(tmp_path / "caffe" / "out.h5") as theirs, \
            h5py.File(tmp_path / "torch" / "out.h5") as ours:  # fmt: skip
        assert sorted(theirs) == sorted(ours) == ["data", "label"]
        for key in ("data", "label"):
            assert theirs[key].shape == ours[key].shape
            np.testing.assert_array_equal(theirs[key][()], ours[key][()])
    assert ours_shape(tmp_path) == (3, 4, 1, 1)


def ours_shape(tmp_path: Path) -> tuple[int, ...]:
    with h5py.File(tmp_path / "torch" / "out.h5") as f:
        return tuple(f["data"].shape)


TRAIN_NET = """
name: "tiny"
layer { name: "data" type: "HDF5Data" top: "x" top: "y"
        hdf5_data_param { source: "list.txt" batch_size: 4 } }
layer { name: "ip1" type: "InnerProduct" bottom: "x" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "shared" type: "InnerProduct" bottom: "ip2" top: "ip3"
        param { name: "w_shared" } param { name: "b_shared" }
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "shared2" type: "InnerProduct" bottom: "ip3" top: "ip4"
        param { name: "w_shared" } param { name: "b_shared" }
        inner_product_param { num_output: 3 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip4" bottom: "y" top: "loss" }
"""
SOLVER = """
net: "net.prototxt"
base_lr: 0.05
momentum: 0.9
lr_policy: "step"
stepsize: 4
gamma: 0.5
max_iter: {max_iter}
display: 1
snapshot: 6
snapshot_prefix: "snap/tiny"
snapshot_format: HDF5
solver_mode: CPU
"""


def _train_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "snap").mkdir()
    rng = np.random.RandomState(3)
    with h5py.File(folder / "d.h5", "w") as f:
        f.create_dataset("x", data=rng.normal(size=(12, 6)).astype(np.float32))
        f.create_dataset("y", data=rng.randint(0, 3, size=12).astype(np.float32))
    (folder / "list.txt").write_text("d.h5\n")
    (folder / "net.prototxt").write_text(TRAIN_NET)
    (folder / "solver.prototxt").write_text(SOLVER.format(max_iter=12))
    return folder


CAFFE_TRAIN = (
    "solver = caffe.get_solver('solver.prototxt')\n"
    "if sys.argv[1]: solver.restore(sys.argv[1])\n"
    "if sys.argv[2]: solver.net.copy_from(sys.argv[2])\n"
    "losses = []\n"
    "while solver.iter < 12:\n"
    "    solver.step(1)\n"
    "    losses.append(float(solver.net.blobs['loss'].data))\n"
    "print(json.dumps(losses))\n"
)


def _torch_run(folder: Path, restore: str = "", weights: str = "") -> list[float]:
    losses: list[float] = []
    with _cwd(folder):
        torch.set_num_threads(1)
        solver = Solver(parse_solver((folder / "solver.prototxt").read_text()))
        if weights:
            solver.load_weights(weights)
        if restore:
            solver.restore(restore)
        while solver.iter < 12:
            solver.step(1)
            losses.append(float(solver.net.blobs["loss"].data))
        solver.close()
    return losses


def test_hdf5_snapshots_cross_between_engines(tmp_path: Path, caffe_runtime):
    ours = _train_folder(tmp_path / "torch")
    theirs = _train_folder(tmp_path / "caffe")
    init = tmp_path / "init.caffemodel.h5"
    torch.manual_seed(1)
    with _cwd(ours):
        net = Net("net.prototxt", "TRAIN")
        net.save_hdf5(init)
        net.close()

    # the same 12 steps on both engines from the same HDF5 weights
    torch_losses = _torch_run(ours, weights=str(init))
    caffe_losses = json.loads(run_pycaffe(caffe_runtime, CAFFE_TRAIN, theirs, "", str(init)))
    np.testing.assert_allclose(torch_losses, caffe_losses, rtol=1e-4, atol=1e-6)
    for engine in (ours, theirs):
        names = sorted(p.name for p in (engine / "snap").iterdir())
        assert names == [
            "tiny_iter_12.caffemodel.h5",
            "tiny_iter_12.solverstate.h5",
            "tiny_iter_6.caffemodel.h5",
            "tiny_iter_6.solverstate.h5",
        ]

    # Caffe resumes from our iteration-6 state, we resume from Caffe's: both continue the run
    state = "snap/tiny_iter_6.solverstate.h5"
    caffe_resumed = json.loads(run_pycaffe(caffe_runtime, CAFFE_TRAIN, ours, state, ""))
    torch_resumed = _torch_run(theirs, restore=state)
    np.testing.assert_allclose(caffe_resumed, caffe_losses[6:], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(torch_resumed, torch_losses[6:], rtol=1e-4, atol=1e-6)

    # the files: same groups, datasets and shapes; the shared blob stored once, by its owner
    with h5py.File(ours / "snap/tiny_iter_12.caffemodel.h5") as a, \
            h5py.File(theirs / "snap/tiny_iter_12.caffemodel.h5") as b:  # fmt: skip
        layout = {k: {d: a["data"][k][d].shape for d in a["data"][k]} for k in a["data"]}
        assert layout == {k: {d: b["data"][k][d].shape for d in b["data"][k]} for k in b["data"]}
        assert layout["shared2"] == {} and layout["shared"] == {"0": (3, 3), "1": (3,)}
    with h5py.File(ours / "snap/tiny_iter_12.solverstate.h5") as a, \
            h5py.File(theirs / "snap/tiny_iter_12.solverstate.h5") as b:  # fmt: skip
        assert sorted(a) == sorted(b) == ["current_step", "history", "iter", "learned_net"]
        assert int(a["iter"][0]) == int(b["iter"][0]) == 12
        assert a["learned_net"][()].rstrip(b"\0") == b["learned_net"][()].rstrip(b"\0")
