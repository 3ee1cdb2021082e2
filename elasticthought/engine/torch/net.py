"""`Net`: a Caffe net on torch, with pycaffe's Python surface.

Built from the phase-filtered NetParameter in Caffe's layer order. Blobs are named tensors in
Caffe's layout; parameters have Caffe's shapes and order. Forward runs the layers in order with
torch autograd recording what Caffe's backward would compute:

- in-place layers (top == bottom) rebind the blob to the new tensor, so after forward the blob
  holds the final content; its diff after backward is the gradient of its first version, as with
  Caffe's shared diff memory;
- a blob read by several layers sums their gradients (what Caffe's Split layers do);
- backward starts from the loss tops (diff = loss_weight) and, with force_backward, from every
  output blob's diff; propagate_down: false detaches that bottom; parameters with lr_mult 0 get
  no diff (unless force_backward);
- parameter diffs accumulate across backward passes until `clear_param_diffs()`.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.torch import layers as _layers  # noqa: F401  (registers layers)
from elasticthought.engine.torch.blob import Blob
from elasticthought.engine.torch.device import resolve_device
from elasticthought.engine.torch.layer import Layer, LayerError, layer_class

_RELEASED = torch.empty(0)
#: the name Caffe gives the top it adds to a loss layer that declares none (AutoTopBlobs)
AUTOMATIC = "(automatic)"


def _clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class NetError(ValueError):
    """A net that Caffe would refuse: unknown bottoms, duplicate tops, bad weights, ..."""


def _check_count(lp: Any, what: str, n: int, allowed: tuple[int, int | None] | None) -> None:
    if allowed is None:
        return
    lo, hi = allowed
    if n < lo or (hi is not None and n > hi):
        want = f"{lo}" if lo == hi else f"{lo} to {hi}" if hi is not None else f"at least {lo}"
        raise NetError(f"layer {lp.name!r} ({lp.type}) takes {want} {what}(s), got {n}")


def _load_data_layers() -> None:
    """Register the data layers (Data, ImageData, MemoryData): importing them fills the
    registry."""
    import elasticthought.engine.torch.data  # noqa: F401


def phase_name(phase: Any) -> str:
    """ "TRAIN"/"TEST" for a string (any case), caffe_pb2.TRAIN/TEST or 0/1."""
    if isinstance(phase, str):
        up = phase.upper()
        if up in ("TRAIN", "TEST"):
            return up
    elif phase in (caffe_pb2.TRAIN, caffe_pb2.TEST):
        return "TRAIN" if phase == caffe_pb2.TRAIN else "TEST"
    raise ValueError(f"phase must be TRAIN or TEST, not {phase!r}")


@dataclass
class _Spec:
    """How one layer is wired into the net."""

    bottoms: list[str]
    tops: list[str]
    inplace: list[bool]
    detach: list[int] = field(default_factory=list)
    loss_weights: list[float] = field(default_factory=list)


class Net:
    """A Caffe net (see the module docstring). `net` is a prototxt path or a NetParameter."""

    def __init__(
        self,
        net: str | os.PathLike | caffe_pb2.NetParameter,
        phase: str | int = "TEST",
        weights: str | os.PathLike | None = None,
        device: str | torch.device | int | None = "cpu",
        stages: Iterable[str] = (),
        level: int = 0,
    ) -> None:
        from elasticthought.engine.netstate import filter_net
        from elasticthought.engine.prototxt import read_net
        from elasticthought.engine.upgrade import net_needs_upgrade, upgrade_net

        self.phase = phase_name(phase)
        self.device = resolve_device(device)
        if isinstance(net, str | os.PathLike):
            param = read_net(net)
        else:
            param = upgrade_net(net) if net_needs_upgrade(net) else net
        self.param = filter_net(param, self.phase, tuple(stages), level)
        self.name = self.param.name
        self.force_backward = bool(self.param.force_backward)
        #: keep the diff of every blob after backward (pycaffe); the solver may turn it off
        self.keep_diffs = True
        _load_data_layers()
        self._build()
        if weights is not None:
            self.copy_from(weights)

    # construction ---------------------------------------------------------------------------
    def _build(self) -> None:
        self.layers: list[Layer] = []
        self.layer_names: list[str] = []
        self._specs: list[_Spec] = []
        self.blobs: OrderedDict[str, Blob] = OrderedDict()
        available: dict[str, None] = {}
        self.inputs: list[str] = []
        for lp in self.param.layer:
            cls = layer_class(lp.type)
            tops = list(lp.top)
            if cls.is_loss and not tops:
                # Caffe's AutoTopBlobs: an anonymous loss top, not usable as a bottom
                taken = AUTOMATIC in self.blobs
                tops = [f"{AUTOMATIC}#{len(self.blobs)}" if taken else AUTOMATIC]
            _check_count(lp, "bottom", len(lp.bottom), cls.num_bottoms)
            _check_count(lp, "top", len(tops), cls.num_tops)
            layer = cls(lp, self.phase, self.device)
            for j, name in enumerate(lp.bottom):
                if name not in self.blobs:
                    raise NetError(
                        f"unknown bottom blob {name!r} (layer {lp.name!r}, bottom index {j})"
                    )
                available.pop(name, None)
            inplace = []
            for j, name in enumerate(tops):
                is_inplace = j < len(lp.bottom) and lp.bottom[j] == name
                if not is_inplace and name in self.blobs:
                    raise NetError(
                        f"top blob {name!r} (layer {lp.name!r}) is produced by multiple sources"
                    )
                inplace.append(is_inplace)
                if not name.startswith(AUTOMATIC):
                    available[name] = None
                if name not in self.blobs:
                    self.blobs[name] = Blob(torch.zeros(0, device=self.device))
                if lp.type == "Input":
                    self.inputs.append(name)
            if len(lp.loss_weight) and len(lp.loss_weight) != len(tops):
                raise NetError(
                    f"layer {lp.name!r}: loss_weight must be given for every top or for none"
                )
            if len(lp.loss_weight):
                weights = [float(w) for w in lp.loss_weight]
            else:
                weights = [1.0 if (cls.is_loss and j == 0) else 0.0 for j in range(len(tops))]
            if len(lp.propagate_down) and len(lp.propagate_down) != len(lp.bottom):
                raise NetError(
                    f"layer {lp.name!r}: propagate_down must be given for every bottom or for none"
                )
            spec = _Spec(list(lp.bottom), tops, inplace, loss_weights=weights)
            for j, pd in enumerate(lp.propagate_down):
                if not pd and not (self.force_backward and layer.allow_force_backward(j)):
                    spec.detach.append(j)
            if self.force_backward:
                spec.detach.extend(
                    j
                    for j in range(len(lp.bottom))
                    if not layer.allow_force_backward(j) and j not in spec.detach
                )
            self.layers.append(layer)
            self.layer_names.append(lp.name)
            self._specs.append(spec)
        self.outputs: list[str] = sorted(available)
        self._setup_layers()

    def _setup_layers(self) -> None:
        """Set every layer up in order (one forward pass without gradients to learn shapes),
        wire parameter sharing, and collect the learnable parameters."""
        self._pending: dict[int, list[torch.Tensor]] = {}
        self._fresh_cache: dict[tuple[int, int], list[str]] = {}
        self.learnable_params: list[Blob] = []
        self.params_lr: list[float] = []
        self.params_weight_decay: list[float] = []
        self._owner_layer: dict[int, Layer] = {}  # id(learnable Blob) -> the layer owning it
        owners: dict[str, tuple[int, int, int]] = {}  # name -> (layer, param id, learnable id)
        explicit_lr: dict[int, bool] = {}
        explicit_decay: dict[int, bool] = {}
        with torch.no_grad():
            for i, (layer, spec) in enumerate(zip(self.layers, self._specs, strict=True)):
                bottoms = [self.blobs[n].tensor for n in spec.bottoms]
                try:
                    layer.setup(bottoms)
                    self._wire_params(i, layer, owners, explicit_lr, explicit_decay)
                    layer.in_setup = True
                    tops = layer.forward(bottoms)
                except (RuntimeError, IndexError, TypeError) as exc:
                    shapes = [list(b.shape) for b in bottoms]
                    raise LayerError(
                        f"layer {layer.name!r} ({layer.type_name}) cannot run on "
                        f"bottoms of shapes {shapes}: {exc}"
                    ) from exc
                finally:
                    layer.in_setup = False
                if len(tops) != len(spec.tops):
                    raise LayerError(
                        f"layer {layer.name!r} ({layer.type_name}) needs "
                        f"{len(tops)} tops, the prototxt gives {len(spec.tops)}"
                    )
                if layer.is_data and not layer.keeps_tops:
                    self._pending[i] = tops
                for name, t in zip(spec.tops, tops, strict=True):
                    self.blobs[name].tensor = t
        for spec in self._specs:
            for name, w in zip(spec.tops, spec.loss_weights, strict=True):
                if w and name in self.outputs:
                    self.blobs[name].grad.fill_(w)
        self._refresh_params()
        self._any_backward = self.force_backward or any(
            b.tensor.requires_grad for b in self.learnable_params
        )

    def _wire_params(self, i, layer, owners, explicit_lr, explicit_decay) -> None:
        lp = layer.param
        blobs: list[Blob] = []
        default = caffe_pb2.ParamSpec()
        if not layer.grad_params and layer.blobs:
            for _ in range(len(lp.param), len(layer.blobs)):
                lp.param.add().lr_mult = 0.0
        for k, tensor in enumerate(layer.blobs):
            spec = lp.param[k] if k < len(lp.param) else default
            name = spec.name
            if name and name in owners:
                oi, ok, lid = owners[name]
                owner = self.layers[oi].blobs[ok]
                strict = spec.share_mode != caffe_pb2.ParamSpec.PERMISSIVE
                if (strict and owner.shape != tensor.shape) or owner.numel() != tensor.numel():
                    raise NetError(
                        f"cannot share param {name!r} owned by layer {self.layers[oi].name!r} "
                        f"(shape {list(owner.shape)}) with layer {layer.name!r} "
                        f"(shape {list(tensor.shape)})"
                    )
                if owner.shape != tensor.shape:
                    raise NetError(
                        f"PERMISSIVE sharing of {name!r} between different shapes is not supported"
                    )
                if spec.HasField("lr_mult"):
                    if explicit_lr.get(lid) and self.params_lr[lid] != spec.lr_mult:
                        raise NetError(f"shared param {name!r} has mismatched lr_mult")
                    self.params_lr[lid], explicit_lr[lid] = float(spec.lr_mult), True
                if spec.HasField("decay_mult"):
                    if explicit_decay.get(lid) and self.params_weight_decay[lid] != spec.decay_mult:
                        raise NetError(f"shared param {name!r} has mismatched decay_mult")
                    self.params_weight_decay[lid] = float(spec.decay_mult)
                    explicit_decay[lid] = True
                layer.blobs[k] = owner
                continue
            lid = len(self.learnable_params)
            if name:
                owners[name] = (i, k, lid)
            tensor.requires_grad_(False)
            blob = Blob(tensor, is_param=True)
            self.learnable_params.append(blob)
            self.params_lr.append(float(spec.lr_mult))
            self.params_weight_decay.append(float(spec.decay_mult))
            explicit_lr[lid] = spec.HasField("lr_mult")
            explicit_decay[lid] = spec.HasField("decay_mult")
            blobs.append(blob)
        # requires_grad is decided once all sharers are known (_refresh_params)
        for blob in blobs:
            self._owner_layer[id(blob)] = layer

    def _refresh_params(self) -> None:
        """Rebuild `params` from the layers' current tensors; set requires_grad per lr_mult."""
        for blob, lr in zip(self.learnable_params, self.params_lr, strict=True):
            layer = self._owner_layer.get(id(blob))
            learn = layer is None or layer.grad_params
            blob.tensor.requires_grad_(bool(learn and (lr != 0 or self.force_backward)))
        self._rebuild_params()

    # forward / backward ---------------------------------------------------------------------
    def _index(self, name: str | None, default: int) -> int:
        if name is None:
            return default
        try:
            return self.layer_names.index(name)
        except ValueError:
            raise NetError(f"no layer named {name!r}") from None

    def _set_inputs(self, inputs: dict[str, Any]) -> None:
        for name, value in inputs.items():
            if name not in self.inputs:
                raise NetError(f"{name!r} is not an input blob (inputs: {self.inputs})")
            blob = self.blobs[name]
            arr = torch.as_tensor(np.asarray(value, dtype=np.float32))
            if tuple(arr.shape) != blob.shape:
                blob.reshape(*arr.shape)
            with torch.no_grad():
                blob.tensor.copy_(arr)

    def _run(self, start: int, end: int, times: list[float] | None = None) -> None:
        """Forward layers start..end; `times` (optional) gets each layer's seconds added."""
        grad = torch.is_grad_enabled() and self._any_backward
        keep = grad and self.keep_diffs
        self._loss_tensors: list[tuple[torch.Tensor, float]] = []
        blobs = self.blobs
        # Let go of the previous pass's activations before computing new ones (what a plain
        # torch model's memory profile looks like); only blobs this range produces afresh.
        for name in self._fresh_tops(start, end):
            blobs[name].tensor = _RELEASED
        with torch.set_grad_enabled(grad):
            for i in range(start, end + 1):
                layer, spec = self.layers[i], self._specs[i]
                if times is not None:
                    t0 = _clock(self.device)
                if layer.keeps_tops:
                    for name in spec.tops:
                        blob = blobs[name]
                        if grad and self.force_backward:
                            t = blob.tensor.detach().requires_grad_(True)
                            blob.tensor = blob._src = t
                            if keep:
                                t.retain_grad()
                        else:
                            blob.tensor = blob.tensor.detach()
                            blob._src = None
                    if times is not None:
                        times[i] += _clock(self.device) - t0
                    continue
                bottoms = [blobs[n].tensor for n in spec.bottoms]
                if grad:
                    for j in spec.detach:
                        bottoms[j] = bottoms[j].detach()
                pending = self._pending.pop(i, None) if self._pending else None
                if pending is not None:
                    tops = pending
                else:
                    try:
                        tops = layer.forward(bottoms)
                    except (RuntimeError, IndexError) as exc:
                        shapes = [list(b.shape) for b in bottoms]
                        raise LayerError(
                            f"layer {layer.name!r} ({layer.type_name}) failed on "
                            f"bottoms of shapes {shapes}: {exc}"
                        ) from exc
                if len(tops) != len(spec.tops):
                    raise LayerError(
                        f"layer {layer.name!r} returned {len(tops)} tops, expected {len(spec.tops)}"
                    )
                for j, name in enumerate(spec.tops):
                    t = tops[j]
                    blob = blobs[name]
                    if grad:
                        if not layer.has_backward and t.requires_grad:
                            t = t.detach()
                        if not spec.inplace[j] and any(t is b for b in bottoms):
                            t = t.view_as(t)
                        if t.requires_grad and (not spec.inplace[j] or blob._src is None):
                            blob._src = t
                            if keep:
                                t.retain_grad()
                        elif not spec.inplace[j]:
                            blob._src = None
                        w = spec.loss_weights[j]
                        if w:
                            self._loss_tensors.append((t, w))
                    else:
                        blob._src = None
                        w = spec.loss_weights[j]
                        if w:
                            self._loss_tensors.append((t, w))
                    blob.tensor = t
                if times is not None:
                    times[i] += _clock(self.device) - t0

    def _fresh_tops(self, start: int, end: int) -> list[str]:
        """Blobs that layers start..end produce without reading them first (cached)."""
        key = (start, end)
        cached = self._fresh_cache.get(key)
        if cached is None:
            read: set[str] = set()
            cached = []
            for i in range(start, end + 1):
                spec = self._specs[i]
                read.update(spec.bottoms)
                if self.layers[i].keeps_tops:
                    continue
                for name, inplace in zip(spec.tops, spec.inplace, strict=True):
                    if not inplace and name not in read and name not in cached:
                        cached.append(name)
            self._fresh_cache[key] = cached
        return cached

    def forward(
        self,
        blobs: Iterable[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        **inputs: Any,
    ) -> dict[str, np.ndarray]:
        """Run layers `start`..`end` (names; default all) after copying `inputs` (input blob
        name -> array) into the input blobs. Returns the output blobs (those of `end` when
        given, plus `blobs`) as numpy arrays."""
        self._set_inputs(inputs)
        i0 = self._index(start, 0)
        i1 = self._index(end, len(self.layers) - 1)
        self._run(i0, i1)
        names = list(self._specs[i1].tops) if end is not None else list(self.outputs)
        names += [b for b in (blobs or ()) if b not in names]
        return {n: self.blobs[n].data for n in names}

    def _seeds(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        tensors: list[torch.Tensor] = []
        grads: list[torch.Tensor] = []
        seen: set[int] = set()
        if self.force_backward:
            for name in self.outputs:
                blob = self.blobs[name]
                if blob.tensor.requires_grad:
                    tensors.append(blob.tensor)
                    grads.append(blob.grad)
                    seen.add(id(blob.tensor))
        for t, w in getattr(self, "_loss_tensors", ()):
            if id(t) in seen or not t.requires_grad:
                continue
            seen.add(id(t))
            out = next((self.blobs[n] for n in self.outputs if self.blobs[n].tensor is t), None)
            tensors.append(t)
            grads.append(out.grad if out is not None else torch.full_like(t, w))
        return tensors, grads

    def backward(
        self,
        diffs: Iterable[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        **top_diffs: Any,
    ) -> dict[str, np.ndarray]:
        """Backpropagate from the loss tops (and, with force_backward, the output blobs' diffs;
        `top_diffs` sets those first). Parameter diffs accumulate. Returns the diffs of the
        input blobs and of `diffs`."""
        if start is not None or end is not None:
            raise NotImplementedError("partial backward (start/end) is not supported")
        for name, value in top_diffs.items():
            if name not in self.outputs:
                raise NetError(f"{name!r} is not an output blob (outputs: {self.outputs})")
            self.blobs[name].diff = value
        self._backward()
        names = list(self.inputs) + [d for d in (diffs or ()) if d not in self.inputs]
        return {n: self.blobs[n].diff for n in names}

    def _backward(self) -> None:
        tensors, grads = self._seeds()
        if tensors:
            # Seeded as scalars sum(t * g) (d/dt = g exactly): explicit gradient tensors make
            # torch import its symbolic-shapes machinery (sympy, about a second) on first use.
            roots = [(t * g).sum() for t, g in zip(tensors, grads, strict=True)]
            try:
                torch.autograd.backward(roots)
            except RuntimeError as exc:
                if "second time" in str(exc):
                    raise NetError(
                        "backward() needs a forward() since the last backward()"
                    ) from None
                raise
        if self.keep_diffs:
            for blob in self.blobs.values():
                src = blob._src
                if src is not None and src.grad is not None:
                    blob._grad = src.grad
                    src.grad = None
        for t, _ in getattr(self, "_loss_tensors", ()):
            t.grad = None
        self._loss_tensors = []

    def forward_backward(self) -> float:
        """One training pass: forward over all layers, backward; returns
        sum(loss_weight * loss tops). Parameter diffs accumulate until clear_param_diffs()."""
        self._run(0, len(self.layers) - 1)
        loss = self._loss_value()
        self._backward()
        return loss

    def forward_loss(self) -> float:
        """Forward over all layers; sum(loss_weight * loss tops) (Caffe's Forward(&loss))."""
        self._run(0, len(self.layers) - 1)
        return self._loss_value()

    @property
    def blob_loss_weights(self) -> OrderedDict[str, float]:
        """Blob name -> the loss weight of its top (0 for most blobs; pycaffe)."""
        weights: OrderedDict[str, float] = OrderedDict((n, 0.0) for n in self.blobs)
        for spec in self._specs:
            for name, w in zip(spec.tops, spec.loss_weights, strict=True):
                if w:
                    weights[name] = w
        return weights

    def _loss_value(self) -> float:
        terms = getattr(self, "_loss_tensors", [])
        if not terms:
            return 0.0
        total = None
        for t, w in terms:
            v = t.detach().sum() * w
            total = v if total is None else total + v
        return float(total)

    def clear_param_diffs(self) -> None:
        """Zero the parameter diffs (Caffe's ClearParamDiffs). The zeros are allocated when a
        diff is next read or written, so backward can store fresh gradients without adding;
        re-read `blob.diff` / `blob.grad` after this call rather than keeping old views."""
        for blob in self.learnable_params:
            blob.tensor.grad = None

    def reshape(self) -> None:
        """pycaffe compatibility: shapes follow the inputs at the next forward."""

    # weights --------------------------------------------------------------------------------
    def share_trained_layers(self, other: Net) -> None:
        """Use `other`'s parameter tensors for the layers of the same name (Caffe's
        ShareTrainedLayersWith; test nets share the train net's weights)."""
        index = {n: i for i, n in enumerate(other.layer_names)}
        for layer in self.layers:
            j = index.get(layer.name)
            if j is None or not layer.blobs:
                continue
            source = other.layers[j]
            if len(source.blobs) != len(layer.blobs):
                raise NetError(f"incompatible number of blobs for layer {layer.name!r}")
            for k, t in enumerate(source.blobs):
                if t.shape != layer.blobs[k].shape:
                    raise NetError(
                        f"cannot share param {k} of layer {layer.name!r}: shape "
                        f"{list(t.shape)} vs {list(layer.blobs[k].shape)}"
                    )
        old = {id(b.tensor): b for b in self.learnable_params}
        for layer in self.layers:
            j = index.get(layer.name)
            if j is None or not layer.blobs:
                continue
            for k, t in enumerate(other.layers[j].blobs):
                mine = old.get(id(layer.blobs[k]))
                if mine is not None:
                    mine.tensor = t
                layer.blobs[k] = t
        # sharers of a replaced owner follow it
        for layer in self.layers:
            for k, t in enumerate(layer.blobs):
                b = old.get(id(t))
                if b is not None and b.tensor is not t:
                    layer.blobs[k] = b.tensor
        self._rebuild_params()

    def _rebuild_params(self) -> None:
        """`params`: layer name -> Blobs of the layer's current parameter tensors."""
        by_tensor = {id(b.tensor): b for b in self.learnable_params}
        self.params: OrderedDict[str, list[Blob]] = OrderedDict()
        for name, layer in zip(self.layer_names, self.layers, strict=True):
            if layer.blobs:
                self.params[name] = [
                    by_tensor.get(id(t)) or Blob(t, is_param=True) for t in layer.blobs
                ]

    def copy_from(self, source: str | os.PathLike | bytes | caffe_pb2.NetParameter) -> None:
        """Copy weights by layer name from a .caffemodel (or NetParameter), as Caffe's
        CopyTrainedLayersFrom: layers missing here are ignored; blob counts and shapes must
        match (legacy 4-D dims compare from the end)."""
        from elasticthought.engine.caffemodel import (
            blob_shape,
            blob_shape_equals,
            blob_to_array,
            read_caffemodel,
        )
        from elasticthought.engine.torch import hdf5
        from elasticthought.engine.upgrade import net_needs_upgrade, upgrade_net

        if isinstance(source, str | os.PathLike) and hdf5.is_hdf5(source):
            self._copy_from_hdf5(source)
            return
        if isinstance(source, caffe_pb2.NetParameter):
            src = upgrade_net(source) if net_needs_upgrade(source) else source
        else:
            src = read_caffemodel(source)
        index: dict[str, int] = {}
        for i, n in enumerate(self.layer_names):
            index.setdefault(n, i)  # the first layer of that name, as Caffe
        for sl in src.layer:
            i = index.get(sl.name)
            if i is None:
                continue
            target = self.layers[i].blobs
            if len(sl.blobs) != len(target):
                raise NetError(
                    f"incompatible number of blobs for layer {sl.name!r}: the weights have "
                    f"{len(sl.blobs)}, the net needs {len(target)}"
                )
            for k, (bp, t) in enumerate(zip(sl.blobs, target, strict=True)):
                if not blob_shape_equals(bp, tuple(t.shape)):
                    raise NetError(
                        f"cannot copy param {k} weights from layer {sl.name!r}; shape mismatch. "
                        f"Source param shape is {list(blob_shape(bp))}; target param shape is "
                        f"{list(t.shape)}"
                    )
                arr = blob_to_array(bp).reshape(tuple(t.shape))
                with torch.no_grad():
                    t.copy_(torch.as_tensor(arr.copy()).reshape(t.shape))

    def _copy_from_hdf5(self, path: str | os.PathLike) -> None:
        """Caffe's CopyTrainedLayersFromHDF5: by layer name; a missing dataset is allowed only
        for a blob shared from another layer; shapes must match exactly."""
        from elasticthought.engine.torch import hdf5

        index: dict[str, int] = {}
        for i, n in enumerate(self.layer_names):
            index.setdefault(n, i)
        owners: set[int] = set()
        owner_of: dict[int, int] = {}
        for i, layer in enumerate(self.layers):
            for t in layer.blobs:
                owner_of.setdefault(id(t), i)
        for name, arrays in hdf5.read_weights(path).items():
            i = index.get(name)
            if i is None:
                continue
            target = self.layers[i].blobs
            if len(arrays) > len(target):
                raise NetError(f"Incompatible number of blobs for layer {name!r}")
            for k, t in enumerate(target):
                arr = arrays[k] if k < len(arrays) else None
                if arr is None:
                    if owner_of.get(id(t)) != i or id(t) in owners:
                        continue  # shared from another layer
                    raise NetError(f"Incompatible number of blobs for layer {name!r}")
                if tuple(arr.shape) != tuple(t.shape):
                    raise NetError(
                        f"cannot copy param {k} weights from layer {name!r}; shape mismatch. "
                        f"Source param shape is {list(arr.shape)}; target param shape is "
                        f"{list(t.shape)}"
                    )
                owners.add(id(t))
                with torch.no_grad():
                    t.copy_(torch.as_tensor(arr.copy()))

    def save_hdf5(self, path: str | os.PathLike, write_diff: bool = False) -> None:
        """Write the weights as Caffe's HDF5 weights file (`.caffemodel.h5`)."""
        from elasticthought.engine.torch import hdf5

        hdf5.write_weights(self, path, write_diff)

    def to_proto(self, write_diff: bool = False) -> caffe_pb2.NetParameter:
        """The net's NetParameter with every layer's parameter blobs (Caffe's ToProto)."""
        from elasticthought.engine.caffemodel import array_to_blob

        out = caffe_pb2.NetParameter()
        out.CopyFrom(self.param)
        for lp, layer in zip(out.layer, self.layers, strict=True):
            del lp.blobs[:]
            for t in layer.blobs:
                arr = t.detach().cpu().numpy()
                diff = None
                if write_diff:
                    g = t.grad
                    diff = np.zeros_like(arr) if g is None else g.detach().cpu().numpy()
                lp.blobs.append(array_to_blob(arr, diff=diff))
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights as a binary .caffemodel."""
        from elasticthought.engine.caffemodel import write_caffemodel

        write_caffemodel(self.to_proto(), path)

    def to(self, device: str | torch.device | int) -> Net:
        """Move every blob and parameter to `device` (in place); returns self."""
        dev = resolve_device(device)
        with torch.no_grad():
            moved: dict[int, torch.Tensor] = {}
            for layer in self.layers:
                layer.device = dev
                for k, t in enumerate(layer.blobs):
                    if id(t) not in moved:
                        new = t.detach().to(dev).requires_grad_(t.requires_grad)
                        moved[id(t)] = new
                    layer.blobs[k] = moved[id(t)]
                for attr, value in vars(layer).items():
                    if attr == "blobs":
                        continue
                    if isinstance(value, torch.Tensor):
                        setattr(layer, attr, value.to(dev))
                    elif isinstance(value, list) and any(
                        isinstance(v, torch.Tensor) for v in value
                    ):
                        setattr(
                            layer,
                            attr,
                            [v.to(dev) if isinstance(v, torch.Tensor) else v for v in value],
                        )
            for blob in self.learnable_params:
                blob.tensor = moved.get(id(blob.tensor), blob.tensor)
            for blob in self.blobs.values():
                blob.tensor = blob.tensor.detach().to(dev)
                blob._grad = None if blob._grad is None else blob._grad.to(dev)
                blob._src = None
            self._pending = {i: [t.to(dev) for t in ts] for i, ts in self._pending.items()}
        self.device = dev
        self._rebuild_params()
        return self

    @property
    def top_names(self) -> OrderedDict[str, list[str]]:
        """Layer name -> its top blob names (pycaffe)."""
        return OrderedDict(
            (n, list(s.tops)) for n, s in zip(self.layer_names, self._specs, strict=True)
        )

    @property
    def bottom_names(self) -> OrderedDict[str, list[str]]:
        """Layer name -> its bottom blob names (pycaffe)."""
        return OrderedDict(
            (n, list(s.bottoms)) for n, s in zip(self.layer_names, self._specs, strict=True)
        )

    def close(self) -> None:
        for layer in self.layers:
            layer.close()

    def __repr__(self) -> str:
        return f"Net({self.name!r}, phase={self.phase}, {len(self.layers)} layers)"
