"""Caffe's Solver on the torch engine: the training loop, tests, snapshots, logs and progress.

pycaffe-like surface::

    solver = get_solver("solver.prototxt", device=None, callback=None, cancel_check=None)
    solver.net, solver.test_nets, solver.iter
    solver.step(n); solver.solve(resume_file=None); solver.snapshot(); solver.restore(path)

Everything follows Caffe's `Solver`/`SGDSolver`: per iteration, clear param diffs, TestAll when
`iter % test_interval == 0` (and iter > 0 or test_initialization), `iter_size` forward/backward
passes, smoothed loss over `average_loss`, display lines, then the update (lr of this iter,
clip -> /iter_size -> weight decay -> the type's rule -> `w -= update`), `iter += 1`, and a
snapshot every `snapshot` iterations. Paths (net, data sources, snapshot prefix, weights) are
relative to the current directory, as in Caffe. Log lines use Caffe's wording (see glog.py).

`callback(event: dict)` receives JSON-ready progress events::

    {"event": "train", "iteration", "loss" (smoothed), "lr", "outputs": {name: value}, "iter_per_s"}
    {"event": "test", "iteration", "net": k, "outputs": {name: mean value}}
    {"event": "snapshot", "iteration", "caffemodel": path, "solverstate": path}
    {"event": "done", "iteration", "stopped_early": bool}

"train" events come every `display` iterations (every iteration when display is 0).
`cancel_check()` is asked before every iteration and test batch; True stops like Caffe's STOP
action (snapshot_after_train still applies, "Optimization stopped early.").
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from google.protobuf import text_format

from elasticthought.engine.torch.lr_policy import check_policy, learning_rate
from elasticthought.engine.torch.solvers import rule_class
from elasticthought.engine.torch.solvers.base import f32

log = logging.getLogger("elasticthought.engine")

Callback = Callable[[dict], None]


class SolverError(ValueError):
    """A solver definition or state that cannot be used (with the reason)."""


def _g(value: float) -> str:
    """A number as C++ iostreams print a float (6 significant digits)."""
    text = f"{value:.6g}"
    return text


def resolve_device(param: Any, device: Any = None) -> torch.device:
    """The torch device: `device` if given (int = CUDA id, str, torch.device), else the solver's
    solver_mode (GPU only when set explicitly, as the caffe tool does) and device_id.
    CUDA asked for but not available is a `SolverError` (a ValueError) with the reason."""
    from elasticthought.engine.torch.device import DeviceError
    from elasticthought.engine.torch.device import resolve_device as _resolve

    if device is None:
        if param.HasField("solver_mode") and param.solver_mode == param.GPU:
            device = int(param.device_id)
        else:
            device = "cpu"
    try:
        return _resolve(device)
    except DeviceError as exc:
        raise SolverError(str(exc)) from None


def blob_loss_weights(net: Any) -> dict[str, float]:
    """Blob name -> loss weight for the tops that carry one (Caffe's blob_loss_weights)."""
    weights = getattr(net, "blob_loss_weights", None)
    if isinstance(weights, dict):
        return weights
    result: dict[str, float] = {}
    for spec in getattr(net, "_specs", []):
        for name, weight in zip(spec.tops, spec.loss_weights, strict=True):
            if weight:
                result[name] = float(weight)
    return result


def forward_loss(net: Any) -> float:
    """Run a forward pass of `net`; the weighted sum of its loss tops (Caffe's Forward(&loss))."""
    fn = getattr(net, "forward_loss", None)
    if fn is not None:
        return float(fn())
    net.forward()
    return float(net._loss_value())


def _merge_state(base: Any, *others: Any) -> Any:
    from elasticthought.engine.proto import caffe_pb2

    state = caffe_pb2.NetState()
    state.CopyFrom(base)
    for other in others:
        state.MergeFrom(other)
    return state


def _read_net(path: str) -> Any:
    from elasticthought.engine.prototxt import read_net

    return read_net(path)


class Solver:
    """A Caffe solver of any type; the update rule comes from `solvers.rule_class(param.type)`."""

    def __init__(
        self,
        param: Any,
        device: Any = None,
        callback: Callback | None = None,
        cancel_check: Callable[[], bool] | None = None,
    ) -> None:
        from elasticthought.engine.proto import caffe_pb2

        self.param = caffe_pb2.SolverParameter()
        self.param.CopyFrom(param)
        param = self.param
        self.callback = callback
        self.cancel_check = cancel_check
        self._before_forward: list[Callable[[], None]] = []
        self._callbacks: list[tuple[Callable[[], None] | None, Callable[[], None] | None]] = []
        check_policy(param)
        rule = rule_class(param.type)
        if param.regularization_type not in ("L1", "L2"):
            raise SolverError(f"Unknown regularization type: {param.regularization_type}")
        if param.iter_size < 1:
            raise SolverError("iter_size must be at least 1")
        if param.average_loss < 1:
            raise SolverError("average_loss should be non-negative and at least 1")
        self.device = resolve_device(param, device)
        self._check_snapshot_prefix()
        log.info("Initializing solver from parameters: \n%s", text_format.MessageToString(param))
        if param.random_seed >= 0:
            torch.manual_seed(int(param.random_seed))
        self._loss_weights: dict[int, dict[str, float]] = {}
        self.net: Any = None
        self.test_nets: list[Any] = []
        try:
            self.net = self._train_net()
            self.net.keep_diffs = False  # only parameter diffs are needed for training
            self.test_nets = self._test_nets()
            for weights in param.weights:
                self.load_weights(weights)
            for net in self.test_nets:
                net.share_trained_layers(self.net)
            self.rule = rule(param, [b.tensor for b in self._blobs])
        except BaseException:
            self.close()  # stop the data threads of the nets built so far
            raise
        self.iter = 0
        self.current_step = 0
        self.requested_early_exit = False
        self.losses: list[float] = []
        self.smoothed_loss = 0.0
        self._iterations_last = 0
        self._timer = time.perf_counter()
        self.lr = float("nan")
        log.info("Solver scaffolding done.")

    def _check_snapshot_prefix(self) -> None:
        """Caffe's CheckSnapshotWritePermissions: fail early when snapshots cannot be written."""
        p = self.param
        if not (p.snapshot or p.snapshot_after_train):
            return
        folder = os.path.dirname(p.snapshot_prefix) or "."
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise SolverError(
                f"Cannot write to snapshot prefix '{p.snapshot_prefix}'. Make sure that the "
                "directory exists and is writable."
            )

    # ---------------------------------------------------------------- nets

    @property
    def _blobs(self) -> list[Any]:
        return list(self.net.learnable_params)

    def _make_net(self, net_param: Any, state: Any) -> Any:
        from elasticthought.engine.torch.net import Net

        phase = "TRAIN" if state.phase == 0 else "TEST"
        net_param.state.CopyFrom(state)
        return Net(
            net_param, phase, device=self.device, stages=tuple(state.stage), level=state.level
        )

    def _train_net(self) -> Any:
        from elasticthought.engine.proto import caffe_pb2

        p = self.param
        sources = [
            p.HasField("train_net_param"),
            p.HasField("train_net"),
            p.HasField("net_param"),
            p.HasField("net"),
        ]
        if sum(sources) != 1:
            raise SolverError(
                "one and only one of train_net_param, train_net, net_param and net must be set"
            )
        if p.HasField("train_net_param"):
            log.info("Creating training net specified in train_net_param.")
            net_param = caffe_pb2.NetParameter()
            net_param.CopyFrom(p.train_net_param)
        elif p.HasField("train_net"):
            log.info("Creating training net from train_net file: %s", p.train_net)
            net_param = _read_net(p.train_net)
        elif p.HasField("net_param"):
            log.info("Creating training net specified in net_param.")
            net_param = caffe_pb2.NetParameter()
            net_param.CopyFrom(p.net_param)
        else:
            log.info("Creating training net from net file: %s", p.net)
            net_param = _read_net(p.net)
        state = _merge_state(
            caffe_pb2.NetState(phase=caffe_pb2.TRAIN), net_param.state, p.train_state
        )
        state.phase = caffe_pb2.TRAIN
        return self._make_net(net_param, state)

    def _test_nets(self) -> list[Any]:
        """Caffe's InitTestNets; nets are appended to self.test_nets as they are built."""
        from elasticthought.engine.proto import caffe_pb2

        p = self.param
        generic = p.HasField("net") or p.HasField("net_param")
        explicit = len(p.test_net_param) + len(p.test_net)
        if generic:
            if len(p.test_iter) < explicit:
                raise SolverError("test_iter must be specified for each test network.")
        elif len(p.test_iter) != explicit:
            raise SolverError("test_iter must be specified for each test network.")
        instances = explicit + (len(p.test_iter) - explicit)
        if len(p.test_state) and len(p.test_state) != instances:
            raise SolverError("test_state must be unspecified or specified once per test net.")
        if instances and p.test_interval <= 0:
            log.warning("test_iter is set but test_interval is 0: the test nets never run")
        sources: list[tuple[str, Any]] = []
        for net_param in p.test_net_param:
            sources.append(("test_net_param", net_param))
        for path in p.test_net:
            sources.append(("test_net file", path))
        for _ in range(instances - explicit):
            sources.append(
                ("net_param", p.net_param) if p.HasField("net_param") else ("net file", p.net)
            )
        for i, (kind, source) in enumerate(sources):
            if isinstance(source, str):
                log.info("Creating test net (#%d) specified by %s: %s", i, kind, source)
                net_param = _read_net(source)
            else:
                log.info("Creating test net (#%d) specified by %s", i, kind)
                net_param = caffe_pb2.NetParameter()
                net_param.CopyFrom(source)
            state = _merge_state(caffe_pb2.NetState(phase=caffe_pb2.TEST), net_param.state)
            if len(p.test_state):
                state.MergeFrom(p.test_state[i])
            state.phase = caffe_pb2.TEST
            self.test_nets.append(self._make_net(net_param, state))
        return self.test_nets

    def load_weights(self, weights: str) -> None:
        """Copy trained layers from comma-separated `.caffemodel` paths into all nets."""
        for path in weights.split(","):
            path = path.strip()
            if not path:
                continue
            log.info("Copying weights from %s", path)
            if not os.path.exists(path):
                raise SolverError(f"weights file {path} not found (relative to {os.getcwd()})")
            for net in [self.net, *self.test_nets]:
                net.copy_from(path)

    # ---------------------------------------------------------------- progress

    def _emit(self, event: dict) -> None:
        if self.callback is not None:
            self.callback(event)

    def _cancelled(self) -> bool:
        if self.cancel_check is not None and self.cancel_check():
            self.requested_early_exit = True
        return self.requested_early_exit

    def _outputs(self, net: Any) -> list[tuple[str, np.ndarray, float]]:
        weights = self._loss_weights.get(id(net))
        if weights is None:
            weights = self._loss_weights[id(net)] = blob_loss_weights(net)
        return [
            (
                name,
                np.asarray(net.blobs[name].data, dtype=np.float32).reshape(-1),
                float(weights.get(name, 0.0)),
            )
            for name in net.outputs
        ]

    # ---------------------------------------------------------------- training

    def _update_smoothed_loss(self, loss: float, start_iter: int, average_loss: int) -> None:
        if len(self.losses) < average_loss:
            self.losses.append(loss)
            size = len(self.losses)
            self.smoothed_loss = (self.smoothed_loss * (size - 1) + loss) / size
        else:
            idx = (self.iter - start_iter) % average_loss
            self.smoothed_loss += (loss - self.losses[idx]) / average_loss
            self.losses[idx] = loss

    def add_before_forward(self, fn: Callable[[], None]) -> None:
        """Call `fn()` before every training forward pass (each of the iter_size passes), like
        pycaffe's net.before_forward hook; e.g. to feed Input blobs per pass."""
        self._before_forward.append(fn)

    def add_callback(
        self,
        on_start: Callable[[], None] | None = None,
        on_gradients_ready: Callable[[], None] | None = None,
    ) -> None:
        """pycaffe's solver.add_callback: `on_start()` before each iteration's passes,
        `on_gradients_ready()` before its update."""
        self._callbacks.append((on_start, on_gradients_ready))

    def share_weights(self, net: Any) -> None:
        """Let another net use this solver's trained weights (pycaffe's share_weights)."""
        net.share_trained_layers(self.net)

    def _forward_backward(self) -> float:
        for fn in self._before_forward:
            fn()
        return float(self.net.forward_backward())

    def step(self, iters: int) -> None:
        """Run `iters` training iterations (stops early when the cancel check says so)."""
        p = self.param
        start_iter = self.iter
        stop_iter = self.iter + iters
        self.losses = []
        self.smoothed_loss = 0.0
        self._timer = time.perf_counter()
        self._iterations_last = self.iter
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if (
                p.test_interval
                and self.iter % p.test_interval == 0
                and (self.iter > 0 or p.test_initialization)
            ):
                self.test_all()
                if self.requested_early_exit:
                    break
            if self._cancelled():
                break
            for on_start, _ in self._callbacks:
                if on_start is not None:
                    on_start()
            display = bool(p.display) and self.iter % p.display == 0
            loss = 0.0
            for _ in range(p.iter_size):
                loss += self._forward_backward()
            loss /= p.iter_size
            self._update_smoothed_loss(loss, start_iter, p.average_loss)
            outputs = None
            per_s = 0.0
            if display or not p.display:
                now = time.perf_counter()
                lapse = now - self._timer
                per_s = (self.iter - self._iterations_last) / (lapse or 1.0)
                outputs = self._outputs(self.net)
                self._timer = now
                self._iterations_last = self.iter
            if display:
                log.info(
                    "Iteration %d (%s iter/s, %ss/%d iters), loss = %s",
                    self.iter,
                    _g(per_s),
                    _g(lapse),
                    p.display,
                    _g(self.smoothed_loss),
                )
                self._log_outputs("Train", outputs)
            for _, on_gradients_ready in self._callbacks:
                if on_gradients_ready is not None:
                    on_gradients_ready()
            self.apply_update(display)
            if outputs is not None:
                self._emit(
                    {
                        "event": "train",
                        "iteration": self.iter,
                        "loss": self.smoothed_loss,
                        "lr": self.lr,
                        "outputs": _output_dict(outputs),
                        "iter_per_s": per_s,
                    }
                )
            self.iter += 1
            if p.snapshot and self.iter % p.snapshot == 0:
                self.snapshot()

    def _log_outputs(self, kind: str, outputs: list[tuple[str, np.ndarray, float]]) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        index = 0
        for name, values, weight in outputs:
            for value in values:
                extra = f" (* {_g(weight)} = {_g(weight * value)} loss)" if weight else ""
                log.info("    %s net output #%d: %s = %s%s", kind, index, name, _g(value), extra)
                index += 1

    def apply_update(self, display: bool = False) -> None:
        """Caffe's SGDSolver::ApplyUpdate on the accumulated param diffs (iter not advanced)."""
        p = self.param
        rate, self.current_step = learning_rate(p, self.iter, self.current_step)
        self.lr = rate
        if display:
            log.info("Iteration %d, lr = %s", self.iter, _g(rate))
        blobs = self._blobs
        diffs = []
        for blob in blobs:
            grad = blob.grad
            if grad is None:
                grad = torch.zeros_like(blob.tensor)
            diffs.append(grad)
        with torch.no_grad():
            self._clip(diffs)
            norm = f32(1.0 / p.iter_size)
            decay = f32(p.weight_decay)
            lr_mults = self.net.params_lr
            decay_mults = self.net.params_weight_decay
            for i, (blob, diff) in enumerate(zip(blobs, diffs, strict=True)):
                if p.iter_size != 1:
                    diff.mul_(norm)
                local_decay = f32(decay * f32(decay_mults[i]))
                if local_decay:
                    if p.regularization_type == "L2":
                        diff.add_(blob.tensor, alpha=local_decay)
                    else:
                        diff.add_(torch.sign(blob.tensor), alpha=local_decay)
                self.rule.compute(i, diff, f32(rate * f32(lr_mults[i])), self.iter)
                blob.tensor.sub_(diff)

    def _clip(self, diffs: list[torch.Tensor]) -> None:
        clip = f32(self.param.clip_gradients)
        if clip < 0:
            return
        sumsq = torch.zeros((), dtype=torch.float32, device=self.device)
        for diff in diffs:
            sumsq = sumsq + torch.sum(diff * diff)
        norm = float(torch.sqrt(sumsq))
        if norm > clip:
            scale = f32(clip / norm)
            log.info(
                "Gradient clipping: scaling down gradients (L2 norm %s > %s) by scale factor %s",
                _g(norm),
                _g(clip),
                _g(scale),
            )
            for diff in diffs:
                diff.mul_(scale)

    def solve(self, resume_file: str | None = None) -> None:
        """Train to max_iter (Caffe's Solver::Solve), optionally resuming from a .solverstate."""
        p = self.param
        log.info("Solving %s", self.net.name)
        log.info("Learning Rate Policy: %s", p.lr_policy)
        self.requested_early_exit = False
        if resume_file:
            log.info("Restoring previous solver status from %s", resume_file)
            self.restore(resume_file)
        start_iter = self.iter
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if self.requested_early_exit:
            log.info("Optimization stopped early.")
            self._emit({"event": "done", "iteration": self.iter, "stopped_early": True})
            return
        if p.display and self.iter % p.display == 0:
            with torch.no_grad():
                loss = forward_loss(self.net)
            self._update_smoothed_loss(loss, start_iter, p.average_loss)
            log.info("Iteration %d, loss = %s", self.iter, _g(self.smoothed_loss))
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        log.info("Optimization Done.")
        self._emit(
            {
                "event": "done",
                "iteration": self.iter,
                "stopped_early": self.requested_early_exit,
            }
        )

    # ---------------------------------------------------------------- testing

    def test_all(self) -> list[dict[str, Any]]:
        """Run every test net; returns their mean outputs (one dict per net)."""
        results = []
        for k in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            results.append(self.test(k))
        return results

    def test(self, k: int = 0) -> dict[str, Any]:
        """Caffe's Solver::Test: test_iter[k] forwards of test net k; mean of each output."""
        p = self.param
        log.info("Iteration %d, Testing net (#%d)", self.iter, k)
        net = self.test_nets[k]
        net.share_trained_layers(self.net)
        scores: list[np.ndarray] | None = None
        names: list[tuple[str, float]] = []
        loss = np.float32(0)
        iters = p.test_iter[k]
        with torch.no_grad():
            for i in range(iters):
                if self._cancelled():
                    break
                iter_loss = forward_loss(net)
                if p.test_compute_loss:
                    loss += np.float32(iter_loss)
                outputs = self._outputs(net)
                if i == 0:
                    scores = [values.copy() for _, values, _ in outputs]
                    names = [(name, weight) for name, _, weight in outputs]
                else:
                    assert scores is not None
                    for s, (_, values, _) in zip(scores, outputs, strict=True):
                        s += values
        if self.requested_early_exit:
            log.info("Test interrupted.")
            return {}
        if p.test_compute_loss:
            log.info("Test loss: %s", _g(float(loss / np.float32(iters))))
        means = [
            (name, (s / np.float32(iters)).astype(np.float32), weight)
            for (name, weight), s in zip(names, scores or [], strict=True)
        ]
        self._log_outputs("Test", means)
        result = _output_dict(means)
        self._emit({"event": "test", "iteration": self.iter, "net": k, "outputs": result})
        return result

    # ---------------------------------------------------------------- snapshots

    def snapshot_filename(self, extension: str) -> str:
        return f"{self.param.snapshot_prefix}_iter_{self.iter}{extension}"

    def snapshot(self) -> tuple[str, str]:
        """Write `<prefix>_iter_<N>.caffemodel` and `.solverstate`; returns both paths."""
        from elasticthought.engine.caffemodel import array_to_blob, write_solverstate
        from elasticthought.engine.proto import caffe_pb2

        if self.param.snapshot_format == self.param.HDF5:
            from elasticthought.engine.torch import hdf5

            model = self.snapshot_filename(".caffemodel.h5")
            log.info("Snapshotting to HDF5 file %s", model)
            self.net.save_hdf5(model, write_diff=bool(self.param.snapshot_diff))
            state_path = self.snapshot_filename(".solverstate.h5")
            log.info("Snapshotting solver state to HDF5 file %s", state_path)
            hdf5.write_state(
                state_path,
                self.iter,
                model,
                self.current_step,
                [h.detach().cpu().numpy() for h in self.rule.history],
            )
            self._emit(
                {
                    "event": "snapshot",
                    "iteration": self.iter,
                    "caffemodel": model,
                    "solverstate": state_path,
                }
            )
            return model, state_path
        model = self.snapshot_filename(".caffemodel")
        log.info("Snapshotting to binary proto file %s", model)
        self.net.save(model)
        state_path = self.snapshot_filename(".solverstate")
        state = caffe_pb2.SolverState()
        state.iter = self.iter
        state.learned_net = model
        state.current_step = self.current_step
        for h in self.rule.history:
            state.history.append(array_to_blob(h.detach().cpu().numpy()))
        log.info("Snapshotting solver state to binary proto file %s", state_path)
        write_solverstate(state, state_path)
        self._emit(
            {
                "event": "snapshot",
                "iteration": self.iter,
                "caffemodel": model,
                "solverstate": state_path,
            }
        )
        return model, state_path

    def restore(self, path: str) -> None:
        """Continue from a `.solverstate`: iter, lr schedule step, history and (via learned_net,
        relative to the current directory) the weights."""
        from elasticthought.engine.caffemodel import (
            blob_shape_equals,
            blob_to_array,
            read_solverstate,
        )
        from elasticthought.engine.torch import hdf5

        if hdf5.is_hdf5(path):
            iteration, learned, step, history = hdf5.read_state(path)
            if len(history) != len(self.rule.history):
                raise SolverError(f"{path}: Incorrect length of history blobs")
            for i, (arr, h) in enumerate(zip(history, self.rule.history, strict=True)):
                if arr.size != h.numel():
                    raise SolverError(
                        f"{path}: history blob {i} does not match the shape {tuple(h.shape)}"
                    )
            if learned:
                self.net.copy_from(learned)
            self.iter, self.current_step = iteration, step
            with torch.no_grad():
                for arr, h in zip(history, self.rule.history, strict=True):
                    h.copy_(torch.from_numpy(arr.reshape(h.shape)))
            return
        state = read_solverstate(path)
        if len(state.history) != len(self.rule.history):
            raise SolverError(
                f"{path}: Incorrect length of history blobs ({len(state.history)} in the state, "
                f"{len(self.rule.history)} needed by a {self.param.type} solver for this net)"
            )
        for i, (blob, h) in enumerate(zip(state.history, self.rule.history, strict=True)):
            if not blob_shape_equals(blob, tuple(h.shape)):
                raise SolverError(
                    f"{path}: history blob {i} does not match the shape {tuple(h.shape)}"
                )
        if state.learned_net:
            self.net.copy_from(state.learned_net)
        self.iter = int(state.iter)
        self.current_step = int(state.current_step)
        with torch.no_grad():
            for blob, h in zip(state.history, self.rule.history, strict=True):
                h.copy_(torch.from_numpy(blob_to_array(blob).reshape(h.shape)))

    def close(self) -> None:
        """Stop the nets' data threads."""
        for net in [self.net, *self.test_nets]:
            closer = getattr(net, "close", None) if net is not None else None
            if closer is not None:
                closer()


def _output_dict(outputs: list[tuple[str, np.ndarray, float]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, values, _ in outputs:
        vals = [float(v) if math.isfinite(v) else str(v) for v in values.tolist()]
        result[name] = vals[0] if len(vals) == 1 else vals
    return result


def upgrade_snapshot_prefix(param: Any, solver_path: str) -> None:
    """Caffe's UpgradeSnapshotPrefixProperty: default the prefix to the solver file without its
    extension; a prefix that is a folder gets the solver file's stem appended."""
    if not param.HasField("snapshot_prefix"):
        param.snapshot_prefix = os.path.splitext(solver_path)[0]
        log.info("snapshot_prefix was not specified and is set to %s", param.snapshot_prefix)
    elif os.path.isdir(param.snapshot_prefix):
        stem = os.path.splitext(os.path.basename(solver_path))[0]
        param.snapshot_prefix = os.path.join(param.snapshot_prefix, stem)
        log.info("snapshot_prefix was a directory and is replaced to %s", param.snapshot_prefix)


def get_solver(
    solver: str | Any,
    device: Any = None,
    callback: Callback | None = None,
    cancel_check: Callable[[], bool] | None = None,
) -> Solver:
    """A solver from a solver.prototxt path (relative to the current directory) or a
    SolverParameter; `device` overrides solver_mode/device_id ("cpu", "cuda:1", 1, ...)."""
    if isinstance(solver, str | os.PathLike):
        from elasticthought.engine.prototxt import read_solver

        path = os.fspath(solver)
        param = read_solver(path)
        upgrade_snapshot_prefix(param, path)
    else:
        param = solver
    return Solver(param, device=device, callback=callback, cancel_check=cancel_check)
