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
