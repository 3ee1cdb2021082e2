"""Run a short pycaffe script under real Caffe's interpreter (a child process, CWD given) and
read back what it saved: the tests' one way to ask real Caffe for reference numbers."""

from __future__ import annotations

import subprocess
from pathlib import Path

from elasticthought.engine.caffe import caffe_env

PRELUDE = "import sys, json, numpy as np, caffe\ncaffe.set_mode_cpu()\n"


def run_pycaffe(runtime: dict, script: str, cwd: Path, *args: str, timeout: float = 600) -> str:
    """Run `script` (after the prelude; `sys.argv[1:]` = args) in `cwd`; its stdout. Fails the
    test with Caffe's stderr when it exits non-zero."""
    done = subprocess.run(
        [runtime["python"], "-c", PRELUDE + script, *args],
        cwd=cwd,
        env=caffe_env(runtime["prefix"]),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout
