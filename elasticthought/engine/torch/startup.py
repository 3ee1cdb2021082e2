"""Fast start-up and shut-down of a process that trains or tests with the torch engine.

Importing torch leaves about 175,000 objects tracked by CPython's cyclic garbage collector
(1100 modules, their functions, classes and operator tables), and the nets a solver builds add
more. The collector walks every tracked object in each full collection: during the imports
(which trigger several), during training (whenever enough objects have survived) and at exit
(the interpreter's final collections). On LeNet that walking is about 0.8 s of a 5 s
`elasticthought train`. An engine entry point therefore imports torch and the engine, and
builds its solver or net, inside `setting_up()`: collection is off in there (nothing in it
makes cyclic garbage worth reclaiming), and at its end `gc.freeze()` moves everything alive
(modules, the nets and their parameters) to the permanent generation, which later collections,
and the final ones at exit, no longer walk. Objects created afterwards are collected as usual.
(A completed program run of `train` also skips the interpreter's tear-down altogether:
`elasticthought.cli.exit_without_teardown`.)

Numerics are untouched: the collector only frees unreachable objects.

One of torch's own modules is deferred as well (`defer_torch_modules`, before torch is
imported): `torch._meta_registrations`, about 0.27 s of CPU time of the 1.1 s torch import. It
registers the Python kernels of the Meta dispatch key (shape-only "meta" tensors, used by
fake tensors, torch.export, torch.compile), which eager training on real CPU or CUDA tensors
never calls. It loads, with the same registrations as an eager import, when

- any of its attributes is read (a module-level `__getattr__`; `from torch import
  _meta_registrations` alone only binds the module),
- one of `LOADED_BEFORE` is imported (torch.export's `export`, torch.compile and ONNX import
  torch._dynamo first), or
- `load_deferred_modules()` is called.

Code that runs operators on meta tensors directly (`torch.empty(..., device="meta")`,
FakeTensorMode) without any of these would find some Meta kernels missing (a loud
NotImplementedError, never a wrong number): the dispatcher reaches the kernels, not the
module, and the Meta key already has torch's C++ fallback, so no on-demand hook can sit there.
Hence only processes that run the engine and nothing else defer it: a program run of
`elasticthought train`, not with `--allow-python-layers` (user code).
`ELASTICTHOUGHT_LAZY_TORCH=0` turns it off. Other candidates were measured and left eager:
torch.export, torch.nested and torch.fx save nothing (their dependencies are imported anyway)
or break torch's import order, and a generic `importlib.util.LazyLoader` does not defer at all
(torch's own import calls `inspect.getmodule`, which touches every module in sys.modules).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.abc
import importlib.machinery
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

#: Set to "0" to keep the collector as Python sets it (for comparing, or if a process must).
GC_SWITCH = "ELASTICTHOUGHT_GC_TUNING"
#: Set to "0" to import all of torch eagerly.
LAZY_TORCH_SWITCH = "ELASTICTHOUGHT_LAZY_TORCH"
#: torch's modules that `defer_torch_modules` defers (see the module docstring).
DEFERRED_MODULES = ("torch._meta_registrations",)
#: Importing any of these first loads the deferred modules (they use Meta kernels).
LOADED_BEFORE = ("torch._dynamo", "torch._inductor", "torch.onnx", "torch._export.non_strict_utils")


def gc_tuning_enabled() -> bool:
    """Whether `setting_up` tunes the collector (the environment switch is not "0")."""
    return os.environ.get(GC_SWITCH, "1") != "0"


@contextlib.contextmanager
def setting_up() -> Iterator[None]:
    """The imports and set-up of an engine process: the cyclic collector is off inside the
    block; when the block completes, everything alive is moved to the permanent generation
    (`gc.freeze()`: later and final collections skip it) before the collector is turned back
    on. Freezing first matters: the objects allocated while it was off all sit in the youngest
    generation, and the first collection after turning it on would walk them all (about 0.1 s
    after importing torch). No collection precedes the freeze either (a full one costs about
    0.4 s here and finds little; the few cycles the imports left stay, as modules do)."""
    if not gc_tuning_enabled() or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        gc.enable()


_lock = threading.RLock()
_pending: dict[str, tuple[ModuleType, Any]] = {}  # name -> (module, its real loader)


def lazy_torch_enabled() -> bool:
    """Whether torch modules may be deferred (the environment switch is not "0")."""
    return os.environ.get(LAZY_TORCH_SWITCH, "1") != "0"


def load_deferred_modules() -> None:
    """Execute every deferred module now (no-op for those already loaded)."""
    with _lock:
        while _pending:
            name, (module, loader) = _pending.popitem()
            module.__dict__.pop("__getattr__", None)
            module.__spec__.loader = loader
            module.__loader__ = loader
            loader.exec_module(module)


def deferred_modules() -> list[str]:
    """The deferred modules not loaded yet."""
    with _lock:
        return sorted(_pending)


class _DeferredLoader(importlib.abc.Loader):
    """Creates the module (name, file, spec set) but leaves its code for later."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        def __getattr__(name: str) -> Any:  # only for attributes the module does not have
            load_deferred_modules()
            return getattr(module, name)

        module.__getattr__ = __getattr__  # type: ignore[method-assign]
        with _lock:
            _pending[module.__name__] = (module, self.loader)


class _Deferrer(importlib.abc.MetaPathFinder):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = set(names)

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname in LOADED_BEFORE:
            load_deferred_modules()
            return None
        if fullname not in self.names:
            return None
        self.names.discard(fullname)  # deferred once; a later import finds it in sys.modules
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _DeferredLoader(spec.loader)
        return spec


def defer_torch_modules() -> bool:
    """Defer `DEFERRED_MODULES` when torch is imported next; False (nothing deferred) when
    switched off or torch is already imported. Only for processes that run the engine and
    nothing else (see the module docstring)."""
    if not lazy_torch_enabled() or "torch" in sys.modules:
        return False
    if not any(isinstance(f, _Deferrer) for f in sys.meta_path):
        sys.meta_path.insert(0, _Deferrer(DEFERRED_MODULES))
    return True
