"""The job resource limits (queue/limits.py): RLIMIT_AS in a child, failure reasons that name
the limit and carry no server path, max-runtime defaults and ceiling."""

from __future__ import annotations

import multiprocessing
import resource
import signal

from elasticthought import limits
from elasticthought.config import config_from_env
from elasticthought.queue.limits import apply_job_limits, explain_failure, max_runtime


def _allocate_in_limited_child(queue: multiprocessing.Queue) -> None:
    config = config_from_env(job_memory_limit=1024, workers=1)
    applied = apply_job_limits({}, config)
    try:
        bytearray(4 * applied)  # more than the limit: must fail, not grow
        queue.put(("grew", applied))
    except MemoryError:
        queue.put(("MemoryError", resource.getrlimit(resource.RLIMIT_AS)[0]))


def test_runaway_allocation_fails_under_the_job_memory_limit() -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_allocate_in_limited_child, args=(queue,))
    proc.start()
    outcome, limit = queue.get(timeout=60)
    proc.join(30)
    assert outcome == "MemoryError" and limit == 1024 * limits.MIB


def test_failure_reasons_name_the_limit_without_server_paths(tmp_path) -> None:
    config = config_from_env(job_memory_limit=1500, data_dir=str(tmp_path / "d"))
    work = str(config.work_path)
    reason = explain_failure(f"MemoryError in {work}/job/x", None, config, gpu_job=False)
    assert "1500 MiB (--job-memory-limit)" in reason and work not in reason
    died = explain_failure("job process died: SIGABRT", -signal.SIGABRT, config, gpu_job=False)
    assert "--job-memory-limit" in died
    killed = "job process died: SIGKILL (killed: out of memory?)"
    assert explain_failure(killed, -signal.SIGKILL, config, gpu_job=False) == killed
    plain = explain_failure("bad solver", None, config, gpu_job=False)
    assert plain == "bad solver"


def test_failure_reasons_carry_no_server_paths(tmp_path) -> None:
    """Absolute paths anywhere in a reason (libraries, engine, system files) become <path>;
    URLs, relative names and the placeholders of the server's folders stay readable."""
    config = config_from_env(data_dir=str(tmp_path / "d"))
    work = str(config.work_path)
    cases = {
        "FileNotFoundError: [Errno 2] No such file or directory: '/opt/et/secret.key'": (
            "FileNotFoundError: [Errno 2] No such file or directory: '<path>'"
        ),
        "ImportError: /usr/lib/x86_64-linux-gnu/libfoo.so.1: cannot open": (
            "ImportError: <path>: cannot open"
        ),
        f"cannot open LMDB: {work}/job/training: Permission denied": (
            "cannot open LMDB: <work>/job/training: Permission denied"
        ),
        "download failed: http://files.example/a/b.tar.gz answered 404": (
            "download failed: http://files.example/a/b.tar.gz answered 404"
        ),
        "label folder alphabet/A/x.png is not an image; 3/4 done": (
            "label folder alphabet/A/x.png is not an image; 3/4 done"
        ),
        "loss diverged (NaN at iteration 12)": "loss diverged (NaN at iteration 12)",
    }
    for reason, shown in cases.items():
        assert explain_failure(reason, None, config, gpu_job=False) == shown


def test_max_runtime_default_and_ceiling() -> None:
    config = config_from_env(default_max_runtime=100.0, max_max_runtime=1000.0)
    assert max_runtime({}, config) == 100.0
    assert max_runtime({"max-runtime": 50}, config) == 50.0
    assert max_runtime({"max-runtime": 10**9}, config) == 1000.0
