"""Time real Caffe from the parent, one repetition at a time (for interleaved benchmarks).

    with CaffeTimer(model="lenet.prototxt", inputs={"data": x, "label": y}, threads=1) as t:
        seconds = t.time(10)  # 10 forward+backward passes, timed inside the child

With `solver=` each repetition is `solver.step(n)` (forward, backward and update). The child
stays up between calls, so repetitions can alternate with other engines' in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from elasticthought.engine.caffe.backend import (
    DEFAULT_PREFIX,
    DEFAULT_PYTHON,
    CaffeError,
    _command,
    caffe_env,
    failure_reason,
)


class CaffeTimer:
    """A pycaffe child holding one net (or solver); `time(n)` returns seconds for n passes."""

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        solver: str | os.PathLike | None = None,
        inputs: dict[str, np.ndarray] | None = None,
        weights: str | os.PathLike | None = None,
        phase: str = "TRAIN",
        threads: int = 1,
        cwd: str | os.PathLike | None = None,
        python: str = DEFAULT_PYTHON,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="et-caffe-time-")
        args = ["time", "--phase", phase]
        if model is not None:
            args += ["--model", str(Path(model).resolve())]
        if solver is not None:
            args += ["--solver", str(solver)]
        if weights is not None:
            args += ["--weights", str(weights)]
        if inputs:
            path = Path(self._tmp.name, "inputs.npz")
            np.savez(path, **{k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()})
            args += ["--input", str(path)]
        self._log = Path(self._tmp.name, "caffe.log")
        with open(self._log, "wb") as err:
            self._proc = subprocess.Popen(
                _command(python, *args),
                cwd=cwd or self._tmp.name,
                env=caffe_env(prefix, threads),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        ready = self._read()
        self.version = str(ready.get("version", ""))

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") in ("ready", "timed"):
                return event
        self._proc.wait()
        text = self._log.read_text(errors="replace")
        raise CaffeError(f"caffe timing child failed: {failure_reason(text)}", text[-8000:])

    def time(self, count: int) -> float:
        """Seconds real Caffe takes for `count` passes (measured in the child)."""
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"{count}\n")
        self._proc.stdin.flush()
        return float(self._read()["seconds"])

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write("quit\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._tmp.cleanup()

    def __enter__(self) -> CaffeTimer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
