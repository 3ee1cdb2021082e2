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


def test_max_runtime_default_and_ceiling() -> None:
    config = config_from_env(default_max_runtime=100.0, max_max_runtime=1000.0)
    assert max_runtime({}, config) == 100.0
    assert max_runtime({"max-runtime": 50}, config) == 50.0
    assert max_runtime({"max-runtime": 10**9}, config) == 1000.0
