"""Run one function in a bounded child process: its own address-space limit (RLIMIT_AS) and a
wall-clock limit, so validating a user's net or model, or downloading a URL a request names,
can never grow or stall the server.

`run_bounded("module:function", args, memory_bytes, timeout)` starts a child, runs the function
there and returns its (picklable) result; an exception it raises comes back as the same
exception when it pickles, else as `BoundedError`. Hitting the memory limit raises
`BoundedLimitError` naming it; so does the time limit (the child is killed).

Two kinds of child:
- the default, a `multiprocessing` spawn child (a fresh interpreter with the server's modules
  importable, for checks that need the engine);
- `lean=True`: `python -S` with only the standard library and this package on its path,
  started with `subprocess` (no re-import of the server's `__main__`), for targets that need
  nothing else (downloads: `elasticthought.fetch`). Its start costs about an interpreter start.

`slots` bounds how many children of one kind run at once (`ChildSlots`): a caller waits for a
free slot up to the slots' `wait` seconds, then gets `BoundedBusy` with the slots' text.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import pickle
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from elasticthought import limits

_MEMORY_WORDS = (
    "memoryerror",
    "can't allocate memory",
    "cannot allocate memory",
    "bad_alloc",
    "out of memory",
    "more than the memory limit",
)
#: Seconds past its time limit a lean child gives itself before its own alarm ends it (a
#: safety net should the server die without killing it).
_SELF_ALARM_GRACE = 5
#: The folder holding the `elasticthought` package: the lean child's only import path.
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_LEAN_BOOT = "import sys; from elasticthought.bounded import lean_main; lean_main(int(sys.argv[1]))"


class BoundedError(RuntimeError):
    """The function failed in its child (the reason is the message)."""


class BoundedLimitError(BoundedError):
    """The child hit its memory or time limit (the message names it)."""


class BoundedBusy(BoundedError):
    """Every bounded-child slot stayed busy for the whole wait."""


class ChildSlots:
    """At most `count` children of one kind at once; a caller waits up to `wait` seconds for
    a free slot (0: not at all), then gets `BoundedBusy(busy_text)`."""

    def __init__(self, count: int, wait: float, busy_text: str) -> None:
        self.count = count
        self.wait = wait
        self.busy_text = busy_text
        self._semaphore = threading.BoundedSemaphore(count)

    def acquire(self) -> None:
        if self.wait > 0:
            free = self._semaphore.acquire(timeout=self.wait)
        else:
            free = self._semaphore.acquire(blocking=False)
        if not free:
            raise BoundedBusy(self.busy_text)

    def release(self) -> None:
        self._semaphore.release()


VALIDATION_SLOTS = ChildSlots(
    limits.VALIDATION_CONCURRENCY,
    limits.VALIDATION_QUEUE_WAIT,
    "the server is busy checking other requests; retry in a moment",
)


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


def lean_main(fd: int) -> None:
    """(In a lean child) read the job from the inherited socket `fd`, run it, answer there."""
    from multiprocessing.connection import Connection

    conn = Connection(fd)
    target, args, memory_bytes, timeout = conn.recv()
    signal.alarm(int(timeout) + _SELF_ALARM_GRACE)
    _child(target, args, memory_bytes, conn)


class _Lean:
    """A lean child (`python -S`, see the module docstring) behind the few calls
    `run_bounded` makes of a `multiprocessing.Process`."""

    def __init__(self, target: str, args: tuple, memory_bytes: int, timeout: float) -> None:
        self.parent, child = multiprocessing.Pipe(duplex=True)
        env = dict(os.environ, PYTHONPATH=_PACKAGE_ROOT)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _LEAN_BOOT, str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                env=env,
                cwd=_PACKAGE_ROOT,
            )
        finally:
            child.close()
        self.parent.send((target, args, memory_bytes, timeout))

    def join(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()

    @property
    def exitcode(self) -> int | None:
        return self.proc.returncode


def _start(target: str, args: tuple, memory_bytes: int, timeout: float, lean: bool) -> tuple:
    """Start the child; (its handle, the parent's end of its pipe)."""
    if lean:
        child = _Lean(target, args, memory_bytes, timeout)
        return child, child.parent
    ctx = multiprocessing.get_context("spawn")
    parent, end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(target, args, memory_bytes, end), daemon=True)
    proc.start()
    end.close()
    return proc, parent


def run_bounded(
    target: str,
    args: tuple,
    memory_bytes: int,
    timeout: float,
    *,
    slots: ChildSlots = VALIDATION_SLOTS,
    lean: bool = False,
) -> Any:
    """`target(*args)` in a child limited to `memory_bytes` of address space and `timeout`
    seconds (see the module docstring)."""
    slots.acquire()
    try:
        proc, parent = _start(target, args, memory_bytes, timeout, lean)
        try:
            ready = parent.poll(timeout)
            message = parent.recv() if ready else None
        except (EOFError, OSError):
            message = ("died", "")
        finally:
            proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join(10.0)
            parent.close()
    finally:
        slots.release()
    mib = memory_bytes // limits.MIB
    if message is None:
        raise BoundedLimitError(f"it ran past its time limit of {timeout:g} s")
    kind, payload = message
    if kind == "ok":
        return payload
    if kind == "memory" or (kind == "died" and proc.exitcode is not None and proc.exitcode < 0):
        raise BoundedLimitError(f"it needs more memory than the limit of {mib} MiB")
    if kind == "raised":
        try:
            exc = pickle.loads(payload)
        except Exception:  # noqa: BLE001
            raise BoundedError("it failed") from None
        raise exc
    raise BoundedError(payload or "it failed")
