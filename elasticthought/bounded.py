"""Run one function in a bounded child process: its own address-space limit (RLIMIT_AS) and a
wall-clock limit, so validating a user's net or model can never grow the server.

`run_bounded("module:function", args, memory_bytes, timeout)` spawns a fresh interpreter, runs
the function there and returns its (picklable) result; an exception it raises comes back as the
same exception when it pickles, else as `BoundedError`. Hitting the memory limit raises
`BoundedLimitError` naming it; so does the time limit (the child is killed). At most
`limits.VALIDATION_CONCURRENCY` children run at once; a caller waits for a free slot for up to
`limits.VALIDATION_QUEUE_WAIT` seconds (then `BoundedBusy`).
"""

from __future__ import annotations

import importlib
import multiprocessing
import pickle
import resource
import threading
from typing import Any

from elasticthought import limits

_SLOTS = threading.BoundedSemaphore(limits.VALIDATION_CONCURRENCY)
_MEMORY_WORDS = (
    "memoryerror",
    "can't allocate memory",
    "cannot allocate memory",
    "bad_alloc",
    "out of memory",
    "more than the memory limit",
)


class BoundedError(RuntimeError):
    """The function failed in its child (the reason is the message)."""


class BoundedLimitError(BoundedError):
    """The child hit its memory or time limit (the message names it)."""


class BoundedBusy(BoundedError):
    """Every bounded-child slot stayed busy for the whole wait."""


def is_memory_failure(exc: BaseException) -> bool:
    """Whether an exception means an allocation failed (torch and numpy say so in words)."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return any(word in text for word in _MEMORY_WORDS)


def _child(target: str, args: tuple, memory_bytes: int, conn: Any) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        module_name, _, attr = target.partition(":")
        result = getattr(importlib.import_module(module_name), attr)(*args)
        conn.send(("ok", result))
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        if is_memory_failure(exc):
            conn.send(("memory", ""))
            return
        try:
            conn.send(("raised", pickle.dumps(exc)))
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_bounded(target: str, args: tuple, memory_bytes: int, timeout: float) -> Any:
    """`target(*args)` in a child limited to `memory_bytes` of address space and `timeout`
    seconds (see the module docstring)."""
    if not _SLOTS.acquire(timeout=limits.VALIDATION_QUEUE_WAIT):
        raise BoundedBusy("the server is busy checking other requests; retry in a moment")
    try:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(target, args, memory_bytes, child), daemon=True)
        proc.start()
        child.close()
        try:
            ready = parent.poll(timeout)
            message = parent.recv() if ready else None
        except (EOFError, OSError):
            message = ("died", "")
        finally:
            proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
            parent.close()
    finally:
        _SLOTS.release()
    mib = memory_bytes // limits.MIB
    if message is None:
        raise BoundedLimitError(f"the check ran past its time limit of {timeout:g} s")
    kind, payload = message
    if kind == "ok":
        return payload
    if kind == "memory" or (kind == "died" and proc.exitcode is not None and proc.exitcode < 0):
        raise BoundedLimitError(f"it needs more memory than the limit of {mib} MiB")
    if kind == "raised":
        try:
            exc = pickle.loads(payload)
        except Exception:  # noqa: BLE001
            raise BoundedError("the check failed") from None
        raise exc
    raise BoundedError(payload or "the check failed")
