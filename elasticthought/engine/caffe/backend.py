"""The `caffe` engine: real BVLC Caffe (pycaffe) run in a child process under its own interpreter.

pycaffe needs numpy 1.x (Debian's /usr/bin/python3), so the service never imports it: it starts
`driver.py` under `python` with the install prefix on PYTHONPATH/LD_LIBRARY_PATH and reads JSON
events from its stdout. Caffe's glog lines go to a log file in the work directory.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from elasticthought.engine.caffe.events import ProgressTranslator

DEFAULT_PYTHON = "/usr/bin/python3"
DEFAULT_PREFIX = "/opt/elasticthought-caffe"
DRIVER = Path(__file__).with_name("driver.py")
LOG_NAME = "caffe.log"

Event = dict[str, Any]


class CaffeError(RuntimeError):
    """Real Caffe failed: `reason` is the first fatal line Caffe logged (or the driver's error)."""

    def __init__(self, reason: str, log_tail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


@dataclass
class TrainResult:
    """How a training run ended: `state` is "finished" or "canceled"."""

    state: str
    iteration: int
    version: str
    model: str | None = None
    solverstate: str | None = None
    snapshots: list[str] = field(default_factory=list)  # every file snapshotted, in order
    log_path: str = ""
    final_tests: list[dict] = field(default_factory=list)


def openblas_coretype() -> str:
    """The OPENBLAS_CORETYPE this CPU needs (OpenBLAS 0.3.21 misdetects newer CPUs)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return ""
    if "avx512f" in flags:
        return "SkylakeX"
    if "avx2" in flags:
        return "Haswell"
    return ""


def process_threads() -> int:
    """The threads this process was given (`OMP_NUM_THREADS`, set from a job's CPU budget),
    1 when it was given none."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS") or 1))
    except ValueError:
        return 1


def caffe_env(prefix: str = DEFAULT_PREFIX, threads: int | None = None) -> dict[str, str]:
    """Environment for a child that imports pycaffe from `prefix` (none of the venv leaks in);
    `threads` (default: this process's, `process_threads`) for OpenBLAS and OpenMP."""
    threads = threads or process_threads()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH")
    }
    env["PYTHONPATH"] = str(Path(prefix) / "python")
    env["LD_LIBRARY_PATH"] = str(Path(prefix) / "lib")
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["GLOG_logtostderr"] = "1"
    env["GLOG_minloglevel"] = "0"
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    env["OMP_NUM_THREADS"] = str(threads)
    coretype = os.environ.get("OPENBLAS_CORETYPE") or openblas_coretype()
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    return env


def _command(python: str, *args: str) -> list[str]:
    return [python, str(DRIVER), "--parent-pid", str(os.getpid()), *args]


_PROBES: dict[tuple[str, str], tuple[bool, str]] = {}


def caffe_available(
    python: str = DEFAULT_PYTHON,
    prefix: str = DEFAULT_PREFIX,
    *,
    timeout: float = 60.0,
    refresh: bool = False,
) -> tuple[bool, str]:
    """(True, caffe version) when `python` imports pycaffe from `prefix`, else (False, reason)."""
    key = (python, prefix)
    if key in _PROBES and not refresh:
        return _PROBES[key]
    if not Path(python).exists():
        result = (False, f"interpreter {python} not found")
    elif not (Path(prefix) / "python" / "caffe").exists():
        result = (False, f"no Caffe in {prefix} (run scripts/install-caffe)")
    else:
        try:
            done = subprocess.run(
                _command(python, "probe"),
                env=caffe_env(prefix),
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            result = (False, f"probing pycaffe failed: {exc}")
        else:
            events = _parse_events(done.stdout)
            probe = next((e for e in events if e.get("event") == "probe"), None)
            if done.returncode == 0 and probe:
                result = (True, str(probe["version"]))
            else:
                lines = done.stderr.strip().splitlines() or ["no output"]
                result = (False, f"{python} cannot import caffe from {prefix}: {lines[-1]}")
    _PROBES[key] = result
    return result


def _parse_events(text: str) -> list[Event]:
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def failure_reason(log_text: str) -> str:
    """The line that says why Caffe died: a glog FATAL/`Check failed` line, else the last one."""
    lines = [line for line in log_text.splitlines() if line.strip()]
    for line in lines:
        if line[:1] == "F" and line[1:5].isdigit():
            return line.split("] ", 1)[-1]
    for line in lines:
        if "Check failed" in line or "Error parsing text-format" in line:
            return line.split("] ", 1)[-1]
    return lines[-1] if lines else "Caffe exited without output"


def _tail(path: Path, start: int = 0, limit: int = 20000) -> str:
    """The last `limit` bytes of `path` written after offset `start`."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(start, handle.tell() - limit))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _reader(stream, sink: queue.Queue) -> None:
    for line in stream:
        line = line.strip()
        if line:
            try:
                sink.put(json.loads(line))
            except ValueError:
                sink.put({"event": "log", "line": line})
    sink.put(None)


@dataclass
class _Run:
    """What `train` learns from the driver while it runs."""

    logfile: Path
    offset: int = 0
    progress: ProgressTranslator = field(default_factory=ProgressTranslator)
    start: Event = field(default_factory=dict)
    end: Event = field(default_factory=dict)
    error: str = ""
    canceled: bool = False
    written: list[str] = field(default_factory=list)  # snapshots seen during the run


def _train_args(
    solver_path: str | os.PathLike,
    logfile: Path,
    weights: str | os.PathLike | None,
    snapshot: str | os.PathLike | None,
    iterations: int | None,
    snapshot_on_cancel: bool,
) -> list[str]:
    """The driver's `train` command line (as `caffe train` takes them, plus the log file)."""
    args = ["train", "--solver", str(solver_path), "--log", str(logfile.resolve())]
    if weights:
        args += ["--weights", str(weights)]
    if snapshot:
        args += ["--snapshot", str(snapshot)]
    if iterations is not None:
        args += ["--iterations", str(iterations)]
    if not snapshot_on_cancel:
        args.append("--no-snapshot-on-cancel")
    return args


def _handle_event(
    run: _Run,
    event: Event,
    callback: Callable[[Event], None] | None,
    on_iteration: Callable[[Event], None] | None,
    log: Callable[[str], None] | None,
) -> None:
    """One driver event: a log line, an iteration, the start, the end, or an error."""

    def deliver(items: list[Event]) -> None:
        if callback is not None:
            for item in items:
                callback(item)

    kind = event.get("event")
    if kind == "log":
        if log is not None:
            log(event["line"])
    elif kind == "iteration":
        run.written.extend(event.get("snapshots") or [])
        if on_iteration is not None:
            on_iteration(event)
        deliver(run.progress.iteration(event))
    elif kind == "start":
        run.start = event
        deliver(run.progress.start(event))
    elif kind in ("done", "canceled"):
        run.end = event
        deliver(run.progress.end(event))
    elif kind == "error":
        run.error = event.get("message", "")


def _follow(
    run: _Run,
    proc: subprocess.Popen,
    events: queue.Queue,
    handle: Callable[[Event], None],
    cancel_check: Callable[[], bool] | None,
    poll_seconds: float,
    kill_grace: float,
) -> None:
    """Take the driver's events until its stdout closes; on cancel, SIGTERM it (it stops at
    the next iteration boundary) and SIGKILL it after `kill_grace` seconds."""
    deadline = None
    checked = 0.0
    while True:
        now = time.monotonic()
        ask = cancel_check is not None and not run.canceled and now - checked >= poll_seconds
        if ask:
            checked = now
        if ask and cancel_check():
            run.canceled = True
            proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + kill_grace
        if deadline is not None and time.monotonic() > deadline and proc.poll() is None:
            proc.kill()
        try:
            event = events.get(timeout=poll_seconds)
        except queue.Empty:
            continue
        if event is None:
            return
        handle(event)


def _result(run: _Run, code: int) -> TrainResult:
    """How the run ended (`CaffeError` with Caffe's reason when it failed)."""
    version = str(run.start.get("version", ""))
    end = run.end
    if end and code == 0:
        return TrainResult(
            state="finished" if end["event"] == "done" else "canceled",
            iteration=int(end["iter"]),
            version=version,
            model=end.get("model"),
            solverstate=end.get("solverstate"),
            snapshots=run.written + list(end.get("snapshots", [])),
            log_path=str(run.logfile),
            final_tests=list(end.get("tests", [])),
        )
    text = _tail(run.logfile, run.offset)
    if run.canceled and code in (-signal.SIGKILL, -signal.SIGTERM):
        return TrainResult(
            state="canceled", iteration=-1, version=version, log_path=str(run.logfile)
        )
    reason = failure_reason(text) if not run.error or "Check failed" in text else run.error
    raise CaffeError(f"caffe failed (exit {code}): {reason}", text)


def train(
    solver_path: str | os.PathLike,
    work_dir: str | os.PathLike,
    *,
    weights: str | os.PathLike | None = None,
    snapshot: str | os.PathLike | None = None,
    callback: Callable[[Event], None] | None = None,
    on_iteration: Callable[[Event], None] | None = None,
    log: Callable[[str], None] | None = None,
    cancel_check: Callable[[], bool] | None = None,
    python: str = DEFAULT_PYTHON,
    prefix: str = DEFAULT_PREFIX,
    iterations: int | None = None,
    threads: int | None = None,
    snapshot_on_cancel: bool = True,
    log_path: str | os.PathLike | None = None,
    poll_seconds: float = 0.2,
    kill_grace: float = 30.0,
) -> TrainResult:
    """Train `solver_path` with real Caffe in a child process, CWD = `work_dir` (as `caffe train`
    with --weights/--snapshot; paths in the solver and net are relative to `work_dir`).

    `callback` gets the torch engine's progress events (events.py: train, test, snapshot, done;
    snapshot paths absolute). `on_iteration` gets every iteration's raw event: iteration
    (0-based, before its update), iter (updates done), loss, smoothed_loss, lr, outputs, tests,
    snapshots, seconds. `log` gets each Caffe glog line (they also go to `log_path`, default
    `work_dir/caffe.log`). `cancel_check` is polled; when it returns True the child stops at the
    next iteration boundary (snapshotting when snapshot_after_train, unless `snapshot_on_cancel`
    is false). `iterations` bounds the run to that many more steps (then no final snapshot/test).
    Raises CaffeError when Caffe fails (bad prototxt, failed CHECK, crash).

    Steps: the command line (`_train_args`), the driver started, its events followed
    (`_follow`, `_handle_event`), the driver reaped, the outcome read (`_result`).
    """
    work = Path(work_dir)
    run = _Run(logfile=Path(log_path) if log_path else work / LOG_NAME)
    args = _train_args(solver_path, run.logfile, weights, snapshot, iterations, snapshot_on_cancel)
    events: queue.Queue = queue.Queue()
    with open(run.logfile, "ab") as err:
        run.offset = err.tell()
        args += ["--log-offset", str(run.offset)]
        proc = subprocess.Popen(
            _command(python, *args),
            cwd=work,
            env=caffe_env(prefix, threads),
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        thread = threading.Thread(target=_reader, args=(proc.stdout, events), daemon=True)
        thread.start()
        try:
            _follow(
                run, proc, events,
                lambda event: _handle_event(run, event, callback, on_iteration, log),
                cancel_check, poll_seconds, kill_grace,
            )  # fmt: skip
        except BaseException:
            proc.kill()  # the caller failed (e.g. a callback raised): no Caffe left behind
            raise
        finally:
            try:  # stdout closed: the child is exiting (Caffe's teardown can take a moment)
                proc.wait(timeout=kill_grace)
            except subprocess.TimeoutExpired:
                proc.kill()
            code = proc.wait()
            thread.join(timeout=5)
    return _result(run, code)


def classify(
    deploy_path: str | os.PathLike,
    weights_path: str | os.PathLike,
    inputs: np.ndarray | dict[str, np.ndarray],
    *,
    blobs: list[str] | None = None,
    python: str = DEFAULT_PYTHON,
    prefix: str = DEFAULT_PREFIX,
    threads: int | None = None,
    timeout: float = 600.0,
) -> dict[str, np.ndarray]:
    """Forward preprocessed `inputs` (one array for the first input blob, or {blob: array})
    through `caffe.Net(deploy, TEST, weights)`; returns the output blobs (or `blobs`)."""
    arrays = inputs if isinstance(inputs, dict) else {"input": inputs}
    with tempfile.TemporaryDirectory(prefix="et-caffe-classify-") as tmp:
        src, dst, logfile = Path(tmp, "in.npz"), Path(tmp, "out.npz"), Path(tmp, LOG_NAME)
        np.savez(src, **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
        args = [
            "classify",
            "--deploy",
            str(Path(deploy_path).resolve()),
            "--weights",
            str(Path(weights_path).resolve()),
            "--input",
            str(src),
            "--output",
            str(dst),
            "--blobs",
            ",".join(blobs or []),
        ]
        with open(logfile, "wb") as err:
            try:
                done = subprocess.run(
                    _command(python, *args),
                    env=caffe_env(prefix, threads),
                    stdout=subprocess.PIPE,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    timeout=timeout,
                    cwd=tmp,
                )
            except subprocess.TimeoutExpired as exc:
                raise CaffeError(f"caffe classify timed out after {timeout} s") from exc
        events = _parse_events(done.stdout)
        if done.returncode != 0 or not any(e.get("event") == "classified" for e in events):
            text = _tail(logfile)
            errors = [e["message"] for e in events if e.get("event") == "error"]
            reason = errors[0] if errors and "Check failed" not in text else failure_reason(text)
            raise CaffeError(f"caffe classify failed (exit {done.returncode}): {reason}", text)
        with np.load(dst) as out:
            return {name: out[name].copy() for name in out.files}


if __name__ == "__main__":  # pragma: no cover - manual check
    print(caffe_available(*sys.argv[1:3]))
