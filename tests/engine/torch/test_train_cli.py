"""`elasticthought train` / `test` argument handling and clear errors (fast cases)."""

from __future__ import annotations

import pytest

from elasticthought.cli import main
from elasticthought.commands.train import gpu_device


def test_weights_and_snapshot_are_exclusive(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["train", "--solver", "s.prototxt", "--weights", "w", "--snapshot", "s"])
    assert code == 1
    assert "not both" in capsys.readouterr().err


def test_missing_and_malformed_solver(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--solver", "nope.prototxt"]) == 1
    assert "nope.prototxt" in capsys.readouterr().err
    (tmp_path / "bad.prototxt").write_text('net: "n.prototxt"\nbase_lr: [\n')
    assert main(["train", "--solver", "bad.prototxt"]) == 1
    err = capsys.readouterr().err
    assert "bad.prototxt" in err and "2:" in err
    (tmp_path / "s.prototxt").write_text('net: "missing_net.prototxt" lr_policy: "fixed"')
    assert main(["train", "--solver", "s.prototxt"]) == 1
    assert "missing_net.prototxt" in capsys.readouterr().err


def test_test_command_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["test", "--model", "m.prototxt", "--weights", "w", "--iterations", "0"]) == 1
    assert "--iterations" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["test", "--model", "m.prototxt"])  # --weights is required, as in Caffe


def test_gpu_flag():
    assert gpu_device(None) is None
    assert gpu_device("1") == 1
    assert gpu_device("2,3") == 2
    assert gpu_device("all") == 0
    assert gpu_device("-1") == "cpu"


# A program run of the CLI in a child, with an atexit handler that marks the interpreter's
# tear-down on stderr; ARGV None runs it as the console script does (the program's own
# arguments), a list runs main(list) as a library call.
CHILD = """
import atexit, sys
atexit.register(lambda: print("TEARDOWN-RAN", file=sys.stderr, flush=True))
from elasticthought.cli import main
ARGV = {argv!r}
sys.argv = ["elasticthought", "train", "--solver", "lenet_solver.prototxt", "--log-file", "t.log"]
code = main(ARGV)
import gc
from elasticthought.engine.torch import startup
print("AFTER", gc.get_freeze_count(), startup.deferred_modules(), file=sys.stderr, flush=True)
sys.exit(code)
"""


def _short_lenet(folder):
    """The golden LeNet case (writable copy), shortened to 2 iterations with a test pass."""
    import re

    from tests.support.paths import GOLDEN, writable_copy

    writable_copy(GOLDEN / "lenet" / "lenet_mnist_200", folder)
    solver = folder / "lenet_solver.prototxt"
    text = re.sub(r"(?m)^(max_iter|test_interval|snapshot):.*$", "", solver.read_text())
    solver.write_text(text + "\nmax_iter: 2\ntest_interval: 2\nsnapshot: 0\n")
    return folder


def _run_child(folder, argv):
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", CHILD.format(argv=argv)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_train_program_ends_without_teardown_after_a_complete_run(tmp_path):
    """Run as the program, a completed `train` ends without the interpreter's tear-down (no
    atexit handler runs) yet with everything written: the full log on stderr and in the log
    file, the final snapshot. Called as a library (main(list)), or when the run fails, the
    process ends normally, and a library call leaves the collector and torch's imports of the
    calling process as they were."""
    from elasticthought.engine.caffemodel import read_caffemodel

    folder = _short_lenet(tmp_path / "run")
    program = _run_child(folder, None)
    assert program.returncode == 0, program.stderr[-2000:]
    assert "TEARDOWN-RAN" not in program.stderr
    assert program.stderr.rstrip().endswith("Optimization Done.")
    assert (folder / "t.log").read_text().rstrip().endswith("Optimization Done.")
    assert "Iteration 2, Testing net (#0)" in program.stderr
    assert len(read_caffemodel(folder / "lenet_iter_2.caffemodel").layer) > 0

    library = _run_child(folder, ["train", "--solver", "lenet_solver.prototxt"])
    assert library.returncode == 0, library.stderr[-2000:]
    assert "TEARDOWN-RAN" in library.stderr
    assert "AFTER 0 []" in library.stderr  # the calling process: nothing frozen or deferred

    (folder / "lenet_solver.prototxt").write_text('net: "missing.prototxt" lr_policy: "fixed"')
    failed = _run_child(folder, None)
    assert failed.returncode == 1
    assert "missing.prototxt" in failed.stderr and "TEARDOWN-RAN" in failed.stderr
