"""Resource limits of one job, applied in its child process, and the failure reasons that
name them.

`apply_job_limits(job, config, gpus)` is called once, where the job starts executing in its
child (queue/child.py, before the runner is loaded): it caps the child's address space
(RLIMIT_AS) at the job memory limit (`--job-memory-limit` MiB, default the machine's memory over
workers + 1; see `elasticthought.limits`). CUDA reserves far more address space than it uses, so
a job given GPUs gets no RLIMIT_AS. The limit is also left in `JOB_MEMORY_ENV` for the runner's
sanity checks (`job_memory_bytes()`).

`explain_failure(reason, exitcode, config)` turns how a job failed into a reason that names the
limit it hit, and `max_runtime(job, config)` is the wall-time limit of a job.
"""

from __future__ import annotations

import os
import re
import resource
import signal
from typing import Any

from elasticthought import limits
from elasticthought.bounded import is_memory_failure

JOB_MEMORY_ENV = "ET_JOB_MEMORY_BYTES"


def job_memory_bytes() -> int:
    """(In a job's child) the memory limit `apply_job_limits` set; 0 when none."""
    try:
        return int(os.environ.get(JOB_MEMORY_ENV) or 0)
    except ValueError:
        return 0


def apply_job_limits(job: dict, config: Any, gpus: list[int] | None = None) -> int:
    """Cap this (child) process for `job`; returns the memory limit in bytes (0: none)."""
    del job  # every job gets the same limits today; the document may name its own later
    memory = limits.job_memory_limit(int(config.job_memory_limit or 0), int(config.workers or 1))
    if gpus:
        os.environ[JOB_MEMORY_ENV] = "0"
        return 0
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        memory = min(memory, hard)
    resource.setrlimit(resource.RLIMIT_AS, (memory, hard))
    os.environ[JOB_MEMORY_ENV] = str(memory)
    return memory


def memory_limit_text(config: Any) -> str:
    """The job memory limit in words with its flag."""
    memory = limits.job_memory_limit(int(config.job_memory_limit or 0), int(config.workers or 1))
    return limit_text(memory)


def limit_text(memory_bytes: int) -> str:
    """A job memory limit of `memory_bytes` in words with its flag."""
    return f"the job memory limit of {memory_bytes // limits.MIB} MiB (--job-memory-limit)"


# An absolute path: a "/" that starts a word (not inside a URL, a relative path or after a
# placeholder such as <work>) followed by path characters.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~>-])/(?=[\w.~-])[^\s'\"`,;:()\[\]{}<>]*")


def scrub_paths(text: str, config: Any) -> str:
    """`text` without the server's paths: its own folders (work, data) become `<work>`,
    `<data>`, `<server>` (what follows them is the job's own names), any other absolute path
    `<path>` (library, engine and system files are none of a user's business)."""
    places = [
        (str(config.work_path), "<work>"),
        (os.path.abspath(config.data_dir), "<data>"),
        (os.getcwd(), "<server>"),
    ]
    for path, name in sorted(places, key=lambda p: -len(p[0])):
        if path and path != "/":
            text = text.replace(path, name)
    return _ABSOLUTE_PATH.sub("<path>", text)


# How a process dies when an allocation fails in native code under RLIMIT_AS (a C++
# bad_alloc aborts; some libraries crash). SIGKILL is the kernel's OOM killer, not our limit.
_ALLOCATION_SIGNALS = {-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS}


def explain_failure(reason: str, exitcode: int | None, config: Any, gpu_job: bool) -> str:
    """A failed job's reason without server paths, naming the memory limit when an allocation
    failed (the child reported it; or, as a likely cause, when it died the way a failed native
    allocation kills a process)."""
    reason = scrub_paths(reason, config)
    if gpu_job:
        return reason
    if exitcode is None and is_memory_failure(RuntimeError(reason)):
        return f"out of memory: the job exceeded {memory_limit_text(config)} ({reason})"
    if exitcode is not None and exitcode in _ALLOCATION_SIGNALS:
        return f"{reason}; likely out of memory: {memory_limit_text(config)}"
    return reason


def max_runtime(job: dict, config: Any) -> float:
    """Seconds the job may run: its `max-runtime`, else `--default-max-runtime`; never more
    than `--max-max-runtime` (0 = unlimited for either flag)."""
    try:
        asked = float(job.get("max-runtime") or 0)
    except (TypeError, ValueError):
        asked = 0.0
    value = asked if asked > 0 else float(config.default_max_runtime or 0)
    ceiling = float(config.max_max_runtime or 0)
    if ceiling > 0:
        value = min(value, ceiling) if value > 0 else ceiling
    return max(0.0, value)
