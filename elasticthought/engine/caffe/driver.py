"""Drive real BVLC Caffe (pycaffe) in a child process; talk JSON lines to the parent.

Runs as a script under the interpreter that imports pycaffe (Debian's python3, numpy 1.x), so it
uses only the standard library, numpy and caffe: nothing from the rest of elasticthought.

    driver.py probe
    driver.py train --solver S --log L [--weights W[,W2]] [--snapshot STATE] [--iterations N]
                    [--no-snapshot-on-cancel] [--parent-pid PID]
    driver.py classify --deploy D --weights W --input X.npz --output Y.npz [--blobs B]
    driver.py time (--model NET [--phase TRAIN|TEST] | --solver S) [--weights W] [--input X.npz]

Every message on stdout is one JSON object with an `event` key: `start`, `log` (a Caffe glog
line), `iteration`, `canceled`, `done`, `classified`, `probe`, `error`. Caffe writes its glog
lines to stderr, which the parent points at the log file L; the driver reads each step's new
lines from that file after the step, so a Caffe abort (failed CHECK) still leaves its reason there.
SIGTERM/SIGINT cancel training at the next iteration boundary (with a snapshot, as `caffe train`
does on SIGINT).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import sys
import time

_OUT = None  # the JSON channel (the original stdout)
_CANCEL = {"requested": False}

_TEST_HEAD = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")
_TEST_OUT = re.compile(r"Test net output #(\d+): (\S+) = (\S+)")
_DISPLAY_LOSS = re.compile(r"Iteration (\d+) \(.*\), loss = (\S+)")
_SNAP_MODEL = re.compile(r"Snapshotting to (?:binary proto|HDF5) file (.+?)\s*$")
_SNAP_STATE = re.compile(r"Snapshotting solver state to (?:binary proto|HDF5) file (.+?)\s*$")


def emit(event: str, **data) -> None:
    """Write one JSON event line to the parent."""
    data["event"] = event
    _OUT.write(json.dumps(data, allow_nan=True) + "\n")
    _OUT.flush()


def _take_json_channel() -> None:
    """Keep the real stdout for JSON; send anything else printed on fd 1 to the log (fd 2)."""
    global _OUT
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = os.fdopen(os.dup(2), "w", buffering=1)
    _OUT = os.fdopen(fd, "w", buffering=1)


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when its parent dies (no orphaned Caffe)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent_pid and os.getppid() != parent_pid:
        os._exit(1)


def _glog(msg: str, level: str = "I") -> None:
    """Write a glog-style line (for the lines Caffe's Solve() would print and we print instead)."""
    now = time.time()
    stamp = time.strftime("%Y%m%d %H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1e6):06d}"
    sys.stderr.write(f"{level}{stamp} {os.getpid():5d} driver.py:0] {msg}\n")
    sys.stderr.flush()


class LogTail:
    """Reads the log file's new lines after each step, forwards them, and parses what Caffe said."""

    def __init__(self, path: str, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.partial = ""

    def read(self) -> list[str]:
        sys.stderr.flush()
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                handle.seek(self.offset)
                text = handle.read()
                self.offset = handle.tell()
        except OSError:
            return []
        text = self.partial + text
        lines = text.split("\n")
        self.partial = lines.pop()
        for line in lines:
            emit("log", line=line)
        return lines


def parse_step_lines(lines: list[str], cwd: str) -> tuple[list[dict], list[str]]:
    """Test results (one dict per test net, in order) and snapshot paths named in Caffe's lines."""
    tests: dict[int, dict] = {}
    current = None
    snapshots = []
    for line in lines:
        match = _TEST_HEAD.search(line)
        if match:
            current = tests.setdefault(int(match.group(2)), {})
            continue
        match = _TEST_OUT.search(line)
        if match and current is not None:
            current[match.group(2)] = float(match.group(3))
            continue
        match = _SNAP_MODEL.search(line) or _SNAP_STATE.search(line)
        if match:
            snapshots.append(os.path.normpath(os.path.join(cwd, match.group(1))))
    return [tests[k] for k in sorted(tests)], snapshots


def learning_rate(param, it: int) -> float:
    """Caffe's SGDSolver::GetLearningRate for iteration `it`."""
    policy = param.lr_policy
    base, gamma, power = param.base_lr, param.gamma, param.power
    if policy == "fixed":
        return base
    if policy == "step":
        return base * gamma ** (it // param.stepsize)
    if policy == "exp":
        return base * gamma**it
    if policy == "inv":
        return base * (1.0 + gamma * it) ** (-power)
    if policy == "multistep":
        step = sum(1 for value in param.stepvalue if it >= value)
        return base * gamma**step
    if policy == "poly":
        return base * (1.0 - float(it) / param.max_iter) ** power
    if policy == "sigmoid":
        return base * (1.0 / (1.0 + math.exp(-gamma * (it - param.stepsize))))
    return float("nan")


def read_solver_param(path: str):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    param = caffe_pb2.SolverParameter()
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        text_format.Merge(text, param)
    except text_format.ParseError as exc:  # "line:column : message"
        raise ValueError(f"{path}:{exc}") from None
    return param


def net_outputs(net) -> tuple[float, dict]:
    """The net's output blobs after the last forward and the loss Caffe sums from them."""
    weights = net.blob_loss_weights
    outputs = {}
    loss = 0.0
    for name in net.outputs:
        data = net.blobs[name].data
        value = float(data.flat[0]) if data.size == 1 else [float(v) for v in data.flat]
        outputs[name] = value
        weight = float(weights.get(name, 0.0))
        if weight:
            loss += weight * float(data.sum())
    return loss, outputs


def test_all(solver, param, iteration: int) -> list[dict]:
    """Solver::TestAll as Caffe does it (used after the last step, where Solve() does it)."""
    results = []
    for k, test_net in enumerate(solver.test_nets):
        _glog(f"Iteration {iteration}, Testing net (#{k})")
        test_net.share_with(solver.net)
        iters = param.test_iter[k] if k < len(param.test_iter) else param.test_iter[-1]
        sums: dict = {}
        loss = 0.0
        for _ in range(iters):
            out = test_net.forward()
            weights = test_net.blob_loss_weights
            for name in test_net.outputs:
                data = out[name].astype("float32")
                sums[name] = sums.get(name, 0) + data
                loss += float(weights.get(name, 0.0)) * float(data.sum())
        result = {}
        index = 0
        for name in test_net.outputs:
            mean = sums[name] / iters
            weight = float(test_net.blob_loss_weights.get(name, 0.0))
            for value in mean.flat:
                suffix = f" (* {weight:g} = {weight * value:g} loss)" if weight else ""
                _glog(f"    Test net output #{index}: {name} = {value:g}{suffix}")
                index += 1
            result[name] = float(mean.flat[0]) if mean.size == 1 else [float(v) for v in mean.flat]
        results.append(result)
    return results


def _on_signal(signum, frame) -> None:
    _CANCEL["requested"] = True


def cmd_train(args) -> int:
    signal.signal(signal.SIGTERM, _on_signal)  # before the slow imports: a cancel is never lost
    signal.signal(signal.SIGINT, _on_signal)
    import caffe

    cwd = os.getcwd()
    tail = LogTail(args.log, args.log_offset)
    caffe.set_mode_cpu()
    param = read_solver_param(args.solver)
    solver = caffe.get_solver(args.solver)
    if args.weights:
        for path in args.weights.split(","):
            solver.net.copy_from(path)
            for test_net in solver.test_nets:
                test_net.copy_from(path)
    if args.snapshot:
        solver.restore(args.snapshot)
    max_iter = param.max_iter
    stop = max_iter if args.iterations is None else min(max_iter, solver.iter + args.iterations)
    emit(
        "start",
        engine="caffe",
        version=caffe.__version__,
        iteration=solver.iter,
        max_iter=max_iter,
        stop_iter=stop,
        display=param.display,
        pid=os.getpid(),
    )
    tail.read()
    smooth: list[float] = []
    average = max(1, param.average_loss)
    latest = {"model": None, "state": None}

    def record(snapshots: list[str]) -> None:
        for path in snapshots:
            if path.endswith(".solverstate") or path.endswith(".solverstate.h5"):
                latest["state"] = path
            else:
                latest["model"] = path

    while solver.iter < stop and not _CANCEL["requested"]:
        it = solver.iter
        lr = learning_rate(param, it)
        start = time.perf_counter()
        solver.step(1)
        seconds = time.perf_counter() - start
        loss, outputs = net_outputs(solver.net)
        smooth.append(loss)
        del smooth[:-average]
        lines = tail.read()
        tests, snapshots = parse_step_lines(lines, cwd)
        record(snapshots)
        smoothed = sum(smooth) / len(smooth)
        if param.iter_size > 1:  # the blobs hold the last pass only: take Caffe's own number
            logged = [m for m in map(_DISPLAY_LOSS.search, lines) if m]
            smoothed = float(logged[-1].group(2)) if logged else smoothed
        emit(
            "iteration",
            iteration=it,
            iter=solver.iter,
            loss=loss,
            smoothed_loss=smoothed,
            lr=lr,
            outputs=outputs,
            tests=tests,
            test_iteration=it if tests else None,
            snapshots=snapshots,
            seconds=seconds,
        )
    if _CANCEL["requested"]:
        _glog(f"Cancel requested at iteration {solver.iter}")
    finished = solver.iter >= max_iter and not _CANCEL["requested"]
    snap_now = param.snapshot_after_train and (not param.snapshot or solver.iter % param.snapshot)
    if args.iterations is not None and not finished:
        snap_now = False  # a bounded run (tests, benchmarks) leaves snapshots to the caller
    if _CANCEL["requested"] and args.no_snapshot_on_cancel:
        snap_now = False
    if snap_now and solver.iter > 0:
        solver.snapshot()
    tests: list[dict] = []
    final_loss = None
    if finished:
        if param.display and solver.iter % param.display == 0:
            final_loss, _ = net_outputs_forward(solver.net)
            _glog(f"Iteration {solver.iter}, loss = {final_loss:g}")
        if param.test_interval and solver.iter % param.test_interval == 0:
            tests = test_all(solver, param, solver.iter)
        _glog("Optimization Done.")
    _, snapshots = parse_step_lines(tail.read(), cwd)
    record(snapshots)
    kind = "done" if not _CANCEL["requested"] else "canceled"
    emit(
        kind,
        iter=solver.iter,
        tests=tests,
        final_loss=final_loss,
        snapshots=snapshots,
        model=latest["model"],
        solverstate=latest["state"],
    )
    return 0


def net_outputs_forward(net) -> tuple[float, dict]:
    net.forward()
    return net_outputs(net)


def cmd_classify(args) -> int:
    import caffe
    import numpy as np

    caffe.set_mode_cpu()
    net = caffe.Net(args.deploy, caffe.TEST, weights=args.weights)
    with np.load(args.input) as data:
        inputs = {name: np.ascontiguousarray(data[name], dtype=np.float32) for name in data.files}
    if list(inputs) == ["input"] and net.inputs:
        inputs = {net.inputs[0]: inputs["input"]}
    for name, array in inputs.items():
        if name not in net.blobs:
            emit("error", message=f"the deploy net has no input blob {name!r}")
            return 2
        net.blobs[name].reshape(*array.shape)
    net.reshape()
    out = net.forward(**inputs)
    wanted = args.blobs.split(",") if args.blobs else list(out)
    result = {name: np.array(net.blobs[name].data, copy=True) for name in wanted}
    np.savez(args.output, **result)
    emit(
        "classified",
        outputs=wanted,
        shapes={k: list(v.shape) for k, v in result.items()},
        version=caffe.__version__,
    )
    return 0


def cmd_time(args) -> int:
    """Serve timing requests: each stdin line "N" runs N forward+backward passes (or N solver
    steps with --solver) and answers {"event": "timed", "seconds": ...}; "quit" ends."""
    import caffe
    import numpy as np

    caffe.set_mode_cpu()
    if args.solver:
        solver = caffe.get_solver(args.solver)
        net = solver.net
    else:
        solver = None
        net = caffe.Net(args.model, caffe.TRAIN if args.phase == "TRAIN" else caffe.TEST)
    if args.weights:
        net.copy_from(args.weights)
    if args.input:
        with np.load(args.input) as data:
            for name in data.files:
                net.blobs[name].reshape(*data[name].shape)
                net.blobs[name].data[...] = data[name]
        net.reshape()
    emit("ready", version=caffe.__version__, inputs=list(net.inputs))
    for line in sys.stdin:
        line = line.strip()
        if not line or line == "quit":
            break
        count = int(line)
        start = time.perf_counter()
        if solver is not None:
            solver.step(count)
        else:
            for _ in range(count):
                net.forward()
                net.backward()
        emit("timed", seconds=time.perf_counter() - start, count=count)
    return 0


def cmd_probe(args) -> int:
    import caffe

    emit(
        "probe",
        version=caffe.__version__,
        layers=sorted(caffe.layer_type_list()),
        python=sys.version.split()[0],
        numpy=__import__("numpy").__version__,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="real Caffe driver (JSON lines on stdout)")
    parser.add_argument("--parent-pid", type=int, default=0)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("probe")
    train = sub.add_parser("train")
    train.add_argument("--solver", required=True)
    train.add_argument("--log", required=True)
    train.add_argument("--log-offset", type=int, default=0)
    train.add_argument("--weights")
    train.add_argument("--snapshot")
    train.add_argument("--iterations", type=int)
    train.add_argument("--no-snapshot-on-cancel", action="store_true")
    classify = sub.add_parser("classify")
    classify.add_argument("--deploy", required=True)
    classify.add_argument("--weights", required=True)
    classify.add_argument("--input", required=True)
    classify.add_argument("--output", required=True)
    classify.add_argument("--blobs", default="")
    timer = sub.add_parser("time")
    timer.add_argument("--model")
    timer.add_argument("--solver")
    timer.add_argument("--phase", default="TRAIN")
    timer.add_argument("--weights")
    timer.add_argument("--input")
    args = parser.parse_args(argv)
    _take_json_channel()
    _die_with_parent(args.parent_pid)
    handler = {
        "probe": cmd_probe,
        "train": cmd_train,
        "classify": cmd_classify,
        "time": cmd_time,
    }[args.command]
    try:
        return handler(args)
    except Exception as exc:  # reported to the parent, with the traceback in the log
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        emit("error", message=f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
