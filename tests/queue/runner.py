"""A trivial job type for queue tests and benchmarks: `queue-test` documents (test-only: it
can abort or segfault on purpose, so it is not shipped in the package).

Import this module (e.g. `--runner-modules elasticthought.jobs,tests.queue.runner`)
to register it. The document's fields drive the child:
- `output`: a file the job appends its id to (one line per run);
- `pid-file`: a file the job writes "<child pid> <grandchild pid>" to (with `grandchild`);
- `grandchild`: start a `sleep` grandchild through `ctx.spawn` first;
- `burst`: report progress this many times at once first (`burst-step` = the last one);
- `sleep`: seconds to sleep (in small steps, reporting progress);
- `gate`: a file to wait for (bounded by `sleep` or 60 s) before going on;
- `action`: "ok" (default), "abort" (os.abort), "segv", "error" (JobError), "crash" (ValueError),
  "oserror" (opens a missing file under /opt, so the error names a server path);
- `engine` / `gpu`: requirements (the default requirements read them).
- `churn-mib`: allocate, fill and free blocks of this many MiB a few times first; the result's
  `churn-page-faults` counts the page faults that took (`tests.support.allocation`).
The result names the threads the job was given (`omp-threads`, `torch-threads`) and when the
runner began (`began-at`, for the job-start latency: claimed until the job's own work).
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

from elasticthought.queue.context import JobContext
from elasticthought.queue.registry import JobError, register_runner
from tests.support.allocation import churn_page_faults

TEST_TYPE = "queue-test"


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def run_test_job(ctx: JobContext) -> dict:
    began = time.time()
    job = ctx.job
    churn = churn_page_faults(int(job["churn-mib"])) if job.get("churn-mib") else None
    grandchild = None
    if job.get("grandchild"):
        grandchild = ctx.spawn(["sleep", "120"])
    if job.get("pid-file"):
        text = f"{os.getpid()} {grandchild.pid if grandchild else 0}"
        tmp = job["pid-file"] + ".tmp"
        Path(tmp).write_text(text)
        os.replace(tmp, job["pid-file"])
    for step in range(int(job.get("burst") or 0)):
        ctx.progress(**{"burst-step": step + 1})
    if job.get("output"):
        _append(job["output"], ctx.job_id)
    if job.get("gate"):
        deadline = time.monotonic() + float(job.get("sleep") or 60)
        while not os.path.exists(job["gate"]) and time.monotonic() < deadline:
            time.sleep(0.02)
    elif job.get("sleep"):
        end = time.monotonic() + float(job["sleep"])
        step = 0
        while time.monotonic() < end and not ctx.cancelled():
            step += 1
            ctx.progress(**{"last-iteration": step})
            time.sleep(0.05)
    action = job.get("action", "ok")
    if action == "abort":
        os.abort()
    if action == "segv":
        ctypes.string_at(0)
    if action == "error":
        raise JobError("the test job failed as asked")
    if action == "crash":
        raise ValueError("unexpected failure")
    if action == "oserror":
        open("/opt/elasticthought-test-missing/secret.key").close()
    return {
        "result": f"ran {ctx.job_id}",
        "ran-attempt": ctx.attempt,
        "work-dir": str(ctx.work_dir),
        "began-at": began,
        "omp-threads": os.environ.get("OMP_NUM_THREADS"),
        "torch-threads": _torch_threads(),
        "churn-page-faults": churn,
    }


def _torch_threads() -> int | None:
    """torch's intra-op threads when torch is imported in this process (a warm one)."""
    import sys

    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


register_runner(TEST_TYPE, "tests.queue.runner:run_test_job")
