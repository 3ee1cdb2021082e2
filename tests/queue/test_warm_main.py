"""The warm fork server runs the parent's main script once: job processes forked from it do
not run it again (multiprocessing otherwise re-runs the main module in every child)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.server import REPO

SCRIPT = textwrap.dedent(
    """
    import os, sys
    with open(sys.argv[1], "a") as marks:
        marks.write(__name__ + "\\n")
    from multiprocessing import current_process
    if len(sys.argv) > 2 and __name__ != "__main__" and current_process().name == "MainProcess":
        raise RuntimeError("this script fails in the fork server")  # children are named

    def report(pipe):
        pipe.send(os.getpid())

    if __name__ == "__main__":
        from elasticthought.queue.warm import warm_context

        ctx = warm_context("")
        for _ in range(3):
            r, w = ctx.Pipe(duplex=False)
            p = ctx.Process(target=report, args=(w,))
            p.start()
            w.close()
            r.recv()
            p.join(60)
            assert p.exitcode == 0, p.exitcode
    """
)


def run_script(tmp_path: Path, *extra: str, as_module: bool = False) -> list[str]:
    """Run SCRIPT (three processes from the warm fork server) as a file or with `python -m`;
    who ran its top level."""
    script = tmp_path / "main_script.py"
    script.write_text(SCRIPT)
    marks = tmp_path / "marks"
    env = {**os.environ, "PYTHONPATH": f"{REPO}:{tmp_path}"}
    program = ["-m", "main_script"] if as_module else [str(script)]
    done = subprocess.run([sys.executable, *program, str(marks), *extra], env=env,
                          timeout=300, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Warning" not in done.stderr, done.stderr[-2000:]
    return marks.read_text().split()


@pytest.mark.parametrize("as_module", [False, True], ids=["script", "module"])
def test_job_processes_do_not_run_the_main_script_again(tmp_path: Path, as_module: bool) -> None:
    # once as the program, once in the fork server; none of the three forked processes
    assert run_script(tmp_path, as_module=as_module) == ["__main__", "__mp_main__"]


def test_a_script_failing_in_the_fork_server_is_run_by_each_child_as_before(
    tmp_path: Path,
) -> None:
    assert run_script(tmp_path, "fail") == ["__main__", "__mp_main__"] + ["__mp_main__"] * 3


def test_main_preload_names_what_the_fork_server_imports(monkeypatch) -> None:
    import types

    from elasticthought.queue import warm
    from elasticthought.queue.forkserver_main import ARGV_ENV, MAIN_ENV, MAIN_MODULE_ENV

    def main_named(name: str | None, file: str | None = None) -> None:
        module = types.ModuleType("__main__")
        module.__spec__ = types.SimpleNamespace(name=name) if name else None
        if file:
            module.__file__ = file
        monkeypatch.setitem(sys.modules, "__main__", module)

    for name in (MAIN_ENV, MAIN_MODULE_ENV, ARGV_ENV):  # unset now and after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    main_named("elasticthought.__main__")  # `python -m elasticthought`: never re-run in children
    assert warm.main_preload() == []
    main_named("benchmarks.queue")
    assert warm.main_preload() == ["elasticthought.queue.forkserver_main"]
    assert os.environ[MAIN_MODULE_ENV] == "benchmarks.queue"
    main_named(None, __file__)
    assert warm.main_preload() == ["elasticthought.queue.forkserver_main"]
    assert os.environ[MAIN_ENV] == os.path.normpath(__file__)
