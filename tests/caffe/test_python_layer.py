"""`Python` layers: refused unless allowed (the service never allows them); with
`elasticthought train --allow-python-layers` they run pycaffe's `caffe.Layer` interface
(setup/reshape/forward/backward, param_str, learned blobs) exactly as real Caffe runs them:
forward, bottom diffs, parameter diffs and a short training run are compared with Caffe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from elasticthought.engine.torch.layer import UnsupportedLayer
from elasticthought.engine.torch.layers.python_layer import allow_python_layers
from elasticthought.engine.torch.net import Net
from tests.caffe.pycaffe_script import run_pycaffe

REPO = Path(__file__).resolve().parents[2]

LAYERS_PY = '''
import json
import numpy as np
import caffe


class ChannelScale(caffe.Layer):
    """top = bottom * w[c] * factor, w learned (one per channel, starts at 1)."""

    def setup(self, bottom, top):
        self.factor = json.loads(self.param_str)["factor"]
        self.blobs.add_blob(bottom[0].data.shape[1])
        self.blobs[0].data[...] = 1.0

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def _w(self, ndim):
        return self.blobs[0].data.reshape((1, -1) + (1,) * (ndim - 2)) * self.factor

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data * self._w(bottom[0].data.ndim)

    def backward(self, top, propagate_down, bottom):
        x, g = bottom[0].data, top[0].diff
        axes = tuple(i for i in range(x.ndim) if i != 1)
        self.blobs[0].diff[...] += (g * x).sum(axis=axes) * self.factor
        if propagate_down[0]:
            bottom[0].diff[...] = g * self._w(x.ndim)


class HalfSquaredError(caffe.Layer):
    """loss = sum((a - b)^2) / (2 N); both bottoms get diffs."""

    def setup(self, bottom, top):
        if len(bottom) != 2:
            raise Exception("needs two bottoms")

    def reshape(self, bottom, top):
        self.d = np.zeros_like(bottom[0].data)
        top[0].reshape(1)

    def forward(self, bottom, top):
        self.d[...] = bottom[0].data - bottom[1].data.reshape(bottom[0].data.shape)
        top[0].data[...] = np.sum(self.d ** 2) / bottom[0].num / 2.0

    def backward(self, top, propagate_down, bottom):
        for i, sign in ((0, 1), (1, -1)):
            if propagate_down[i]:
                bottom[i].diff[...] = (sign * top[0].diff[0] * self.d / bottom[i].num).reshape(
                    bottom[i].diff.shape)
'''

NET = """
name: "py"
force_backward: true
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 dim: 4 } } }
layer { name: "t" type: "Input" top: "t" input_param { shape { dim: 2 dim: 3 dim: 4 } } }
layer { name: "scale" type: "Python" bottom: "x" top: "s"
        python_param { module: "pylayers" layer: "ChannelScale" param_str: '{"factor": 1.5}' } }
layer { name: "loss" type: "Python" bottom: "s" bottom: "t" top: "loss" loss_weight: 2
        python_param { module: "pylayers" layer: "HalfSquaredError" } }
"""


@pytest.fixture
def folder(tmp_path: Path):
    (tmp_path / "pylayers.py").write_text(LAYERS_PY)
    (tmp_path / "net.prototxt").write_text(NET)
    old = Path.cwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(old)
    allow_python_layers(False)
    sys.modules.pop("pylayers", None)


def test_python_layers_are_refused_unless_allowed(folder: Path):
    allow_python_layers(False)
    with pytest.raises(UnsupportedLayer, match="--allow-python-layers"):
        Net("net.prototxt", "TRAIN")
    (folder / "solver.prototxt").write_text(
        'net: "net.prototxt"\nmax_iter: 1\nbase_lr: 0.1\nlr_policy: "fixed"\n'
        "display: 1\nsolver_mode: CPU\nsnapshot_after_train: false\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "elasticthought", "train", "--solver", "solver.prototxt"]
    done = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "--allow-python-layers" in done.stderr
    done = subprocess.run([*cmd, "--allow-python-layers"], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Iteration 0" in done.stderr


@pytest.mark.caffe
def test_python_layers_match_real_caffe(folder: Path, caffe_runtime):
    rng = np.random.RandomState(0)
    x = rng.normal(size=(2, 3, 4)).astype(np.float32)
    t = rng.normal(size=(2, 3, 4)).astype(np.float32)
    w = np.array([0.5, -1.0, 2.0], np.float32)
    np.savez(folder / "inputs.npz", x=x, t=t, w=w)
    script = (
        "d = np.load('inputs.npz')\n"
        "net = caffe.Net('net.prototxt', caffe.TRAIN)\n"
        "net.params['scale'][0].data[...] = d['w']\n"
        "net.blobs['x'].data[...] = d['x']\n"
        "net.blobs['t'].data[...] = d['t']\n"
        "net.forward()\n"
        "out = {'s': net.blobs['s'].data.copy(), 'loss': net.blobs['loss'].data.copy()}\n"
        "net.clear_param_diffs()\n"
        "net.backward()\n"
        "out.update(dx=net.blobs['x'].diff.copy(), dt=net.blobs['t'].diff.copy(),\n"
        "           dw=net.params['scale'][0].diff.copy())\n"
        "np.savez('caffe.npz', **out)\n"
    )
    run_pycaffe(caffe_runtime, script, folder)
    want = np.load(folder / "caffe.npz")
    allow_python_layers()
    net = Net("net.prototxt", "TRAIN")
    net.params["scale"][0].data[...] = w
    out = net.forward(x=x, t=t)
    net.clear_param_diffs()
    diffs = net.backward(diffs=["t"])
    np.testing.assert_allclose(net.blobs["s"].data, want["s"], rtol=1e-6)
    np.testing.assert_allclose(out["loss"], want["loss"].reshape(out["loss"].shape), rtol=1e-6)
    np.testing.assert_allclose(diffs["x"], want["dx"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(diffs["t"], want["dt"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.params["scale"][0].diff, want["dw"], rtol=1e-5, atol=1e-7)
    assert float(np.abs(want["dw"]).sum()) > 0 and net.blob_loss_weights["loss"] == 2


TRAIN_NET = """
name: "pytrain"
layer { name: "data" type: "HDF5Data" top: "x" top: "t"
        hdf5_data_param { source: "list.txt" batch_size: 4 } }
layer { name: "scale" type: "Python" bottom: "x" top: "s"
        python_param { module: "pylayers" layer: "ChannelScale" param_str: '{"factor": 0.5}' } }
layer { name: "ip" type: "InnerProduct" bottom: "s" top: "y"
        inner_product_param { num_output: 2 weight_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "Python" bottom: "y" bottom: "t" top: "loss" loss_weight: 1
        python_param { module: "pylayers" layer: "HalfSquaredError" } }
"""


@pytest.mark.caffe
def test_training_with_python_layers_follows_caffe(folder: Path, caffe_runtime):
    rng = np.random.RandomState(1)
    with h5py.File(folder / "d.h5", "w") as f:
        f.create_dataset("x", data=rng.normal(size=(16, 3)).astype(np.float32))
        f.create_dataset("t", data=rng.normal(size=(16, 2)).astype(np.float32))
    (folder / "list.txt").write_text("d.h5\n")
    (folder / "train.prototxt").write_text(TRAIN_NET)
    (folder / "solver.prototxt").write_text(
        'net: "train.prototxt"\nbase_lr: 0.1\nmomentum: 0.9\nlr_policy: "fixed"\nmax_iter: 20\n'
        "display: 1\nsnapshot_after_train: false\nsolver_mode: CPU\n"
    )
    script = (
        "solver = caffe.get_solver('solver.prototxt')\n"
        "losses = []\n"
        "for _ in range(20):\n"
        "    solver.step(1)\n"
        "    losses.append(float(solver.net.blobs['loss'].data.reshape(-1)[0]))\n"
        "print(json.dumps(losses))\n"
    )
    theirs = json.loads(run_pycaffe(caffe_runtime, script, folder))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "elasticthought", "train", "--solver", "solver.prototxt",
         "--allow-python-layers"],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    from elasticthought.engine.logparse import parse_log

    ours = [r["loss"] for r in parse_log(done.stderr).train]
    assert len(ours) == 20
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-6)
    assert np.mean(theirs[-4:]) < np.mean(theirs[:4])  # one pass over the data each
