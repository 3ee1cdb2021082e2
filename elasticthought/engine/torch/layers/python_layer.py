"""`Python` layers: user code with pycaffe's `caffe.Layer` interface.

They run arbitrary code, so the type is only in the layer registry once the process allowed it
with `allow_python_layers()` -- only `elasticthought train|test --allow-python-layers` does; the
service (which validates nets against the registry) and its workers never do.

`python_param`: module (imported by name; the current directory is searched first, then
sys.path), layer (the class), param_str (the class sees it as `self.param_str`). The class
implements `setup(bottom, top)`, `reshape(bottom, top)`, `forward(bottom, top)` and
`backward(top, propagate_down, bottom)` on pycaffe-like blobs
(`.data` and `.diff` numpy arrays, `.reshape(*shape)`, `.shape`, `.count`, `.num`, ...), may add
learned blobs with `self.blobs.add_blob(*shape)` in setup, and sees `self.phase` (0 TRAIN,
1 TEST). A module doing `import caffe` gets real pycaffe when it is importable, otherwise a small
stand-in module with `Layer`, `TRAIN` and `TEST`. Like Caffe, a Python layer is not a loss layer
unless its prototxt gives loss_weight. The arrays are CPU numpy arrays whatever the device.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Any

import numpy as np
import torch

from elasticthought.engine.torch.layer import LAYERS, OPT_IN, Layer, UnsupportedLayer, register

REFUSED = OPT_IN["Python"]


def allow_python_layers(allowed: bool = True) -> None:
    """Let this process build `Python` layers (the train/test CLI's --allow-python-layers):
    registers the type, or removes it again."""
    if allowed:
        register(Python)
    else:
        LAYERS.pop(Python.type_name, None)


def python_layers_allowed() -> bool:
    return LAYERS.get(Python.type_name) is Python


class PyBlob:
    """A pycaffe-like blob over numpy arrays (data and diff, float32)."""

    def __init__(self, shape: tuple[int, ...] = ()) -> None:
        self.data = np.zeros(shape, np.float32)
        self.diff = np.zeros(shape, np.float32)

    def reshape(self, *shape: int) -> None:
        shape = tuple(int(d) for d in shape)
        if self.data.shape != shape:
            self.data = np.zeros(shape, np.float32)
            self.diff = np.zeros(shape, np.float32)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def count(self) -> int:
        return int(self.data.size)

    def _legacy(self, axis: int) -> int:
        return int(self.data.shape[axis]) if self.data.ndim > axis else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))


class BlobVec(list):
    """`self.blobs` of a Python layer: `add_blob(*shape)` appends a zero-filled blob."""

    def add_blob(self, *shape: int) -> None:
        self.append(PyBlob(tuple(int(d) for d in shape)))


class _StandInLayer:
    """The stand-in `caffe.Layer` base class (used when real pycaffe is not importable)."""

    def setup(self, bottom, top):  # noqa: D102 - pycaffe's interface
        pass

    def reshape(self, bottom, top):  # noqa: D102
        pass

    def forward(self, bottom, top):  # noqa: D102
        pass

    def backward(self, top, propagate_down, bottom):  # noqa: D102
        pass


def _ensure_caffe_module() -> None:
    """Make `import caffe` work in user modules: real pycaffe if importable, else a stand-in."""
    if "caffe" in sys.modules:
        return
    try:
        importlib.import_module("caffe")
        return
    except Exception:  # noqa: BLE001 - any failure means: use the stand-in
        sys.modules.pop("caffe", None)
    shim = types.ModuleType("caffe")
    shim.__doc__ = "ElasticThought's stand-in for pycaffe inside Python layers"
    shim.Layer = _StandInLayer
    shim.TRAIN, shim.TEST = 0, 1
    sys.modules["caffe"] = shim


class _PythonFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, layer, n_bottoms, *inputs):
        bottoms, params = inputs[:n_bottoms], inputs[n_bottoms:]
        layer._load(bottoms, params)
        layer.impl.reshape(layer.bottom, layer.top)
        layer.impl.forward(layer.bottom, layer.top)
        ctx.layer, ctx.n_bottoms = layer, n_bottoms
        ctx.snapshot = [(b.data.copy()) for b in layer.bottom]
        return tuple(torch.from_numpy(t.data.copy()).to(layer.device) for t in layer.top)

    @staticmethod
    def backward(ctx, *grads):
        layer, n = ctx.layer, ctx.n_bottoms
        for blob, data in zip(layer.bottom, ctx.snapshot, strict=True):
            blob.data[...] = data
        for blob, g in zip(layer.top, grads, strict=True):
            blob.diff[...] = 0.0 if g is None else g.detach().cpu().numpy().reshape(blob.shape)
        for blob in layer.bottom:
            blob.diff[...] = 0.0
        for blob in layer.impl.blobs:
            blob.diff[...] = 0.0
        propagate = [bool(ctx.needs_input_grad[2 + i]) for i in range(n)]
        layer.impl.backward(layer.top, propagate, layer.bottom)
        out = [
            torch.from_numpy(b.diff.copy()).to(layer.device) if propagate[i] else None
            for i, b in enumerate(layer.bottom)
        ]
        out += [
            torch.from_numpy(b.diff.copy()).to(layer.device)
            if ctx.needs_input_grad[2 + n + k]
            else None
            for k, b in enumerate(layer.impl.blobs)
        ]
        return (None, None, *out)


class Python(Layer):
    """Caffe's `Python` layer (see the module docstring)."""

    type_name = "Python"

    def __init__(self, param: Any, phase: str, device: torch.device) -> None:
        if not python_layers_allowed():
            raise UnsupportedLayer(f"layer {param.name!r}: {REFUSED}")
        super().__init__(param, phase, device)
        p = param.python_param
        if not p.module or not p.layer:
            raise self.error("python_param needs module and layer")
        _ensure_caffe_module()
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(p.module)
            cls = getattr(module, p.layer)
        except (ImportError, AttributeError) as exc:
            raise self.error(f"cannot load {p.module}.{p.layer}: {exc}") from None
        self.impl = cls.__new__(cls)
        self.impl.param_str = p.param_str
        self.impl.phase = 0 if phase == "TRAIN" else 1
        self.impl.blobs = BlobVec()
        self.bottom = [PyBlob() for _ in param.bottom]
        self.top = [PyBlob() for _ in param.top]

    def _load(self, bottoms, params) -> None:
        for blob, t in zip(self.bottom, bottoms, strict=True):
            arr = t.detach().cpu().numpy()
            blob.reshape(*arr.shape)
            blob.data[...] = arr
        for blob, t in zip(self.impl.blobs, params, strict=True):
            blob.data[...] = t.detach().cpu().numpy()

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        self._load(bottoms, [])
        try:
            self.impl.setup(self.bottom, self.top)
        except Exception as exc:  # noqa: BLE001 - user code: report it as this layer's error
            raise self.error(f"setup failed: {type(exc).__name__}: {exc}") from exc
        self.blobs = [torch.from_numpy(b.data.copy()).to(self.device) for b in self.impl.blobs]

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        try:
            return list(_PythonFn.apply(self, len(bottoms), *bottoms, *self.blobs))
        except (ValueError, TypeError, KeyError, AttributeError, AssertionError) as exc:
            raise self.error(f"{type(exc).__name__}: {exc}") from exc
