"""The layering contracts (pyproject.toml's [tool.importlinter]) hold, and they do catch a
violation: `lint-imports` fails on a copy of the package whose api imports jobs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _lint(root: Path) -> tuple[int, str]:
    """lint-imports' exit status and its report (colours removed) for the package in `root`."""
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return done.returncode, ANSI.sub("", done.stdout + done.stderr)


def _copy(tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(
        ROOT / "elasticthought", dest / "elasticthought",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )  # fmt: skip
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_the_package_keeps_its_layering_contracts():
    rc, report = _lint(ROOT)
    assert rc == 0, report
    assert "Contracts: 5 kept, 0 broken." in report


def test_an_api_module_importing_jobs_breaks_the_build(tmp_path):
    repo = _copy(tmp_path)
    (repo / "elasticthought" / "api" / "violation.py").write_text(
        '"""A deliberate layering violation."""\n\nimport elasticthought.jobs.classify  # noqa\n'
    )
    rc, report = _lint(repo)
    assert rc != 0, report
    assert "api is HTTP only: no jobs, no engine internals BROKEN" in report
    assert "elasticthought.api.violation -> elasticthought.jobs.classify" in report
    assert "Contracts: 4 kept, 1 broken." in report


def test_queue_reaching_into_an_engine_breaks_the_build(tmp_path):
    repo = _copy(tmp_path)
    target = repo / "elasticthought" / "queue" / "capabilities.py"
    target.write_text(
        target.read_text()
        + "\n\ndef _caffe():\n    from elasticthought.engine.caffe import backend\n"
        "\n    return backend\n"
    )
    rc, report = _lint(repo)
    assert rc != 0, report
    assert "queue imports neither api, jobs nor engine internals BROKEN" in report
    assert "elasticthought.queue.capabilities -> elasticthought.engine.caffe.backend" in report
