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

Numerics are untouched: the collector only frees unreachable objects.

Deferring torch's own submodules was measured and left out: the one large, otherwise unused
module, `torch._meta_registrations` (about 0.35 s), registers the Python kernels of the Meta
dispatch key; it is reached through the dispatcher, never by touching the module, so a deferred
copy would make meta-device operations (e.g. a convolution on `device="meta"`) fail instead of
loading transparently, and the Meta key already has a C++ fallback, so no on-demand hook can be
registered there. Deferring others (torch.export, torch.nested, torch.fx) either saves nothing
(their dependencies are imported anyway) or breaks torch's import order.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

#: Set to "0" to keep the collector as Python sets it (for comparing, or if a process must).
ENV_SWITCH = "ELASTICTHOUGHT_GC_TUNING"


def enabled() -> bool:
    """Whether the start-up tuning applies (the environment switch is not "0")."""
    return os.environ.get(ENV_SWITCH, "1") != "0"


@contextlib.contextmanager
def setting_up() -> Iterator[None]:
    """The imports and set-up of an engine process: the cyclic collector is off inside the
    block; when the block completes, everything alive is moved to the permanent generation
    (`gc.freeze()`: later and final collections skip it) before the collector is turned back
    on. Freezing first matters: the objects allocated while it was off all sit in the youngest
    generation, and the first collection after turning it on would walk them all (about 0.1 s
    after importing torch). No collection precedes the freeze either (a full one costs about
    0.4 s here and finds little; the few cycles the imports left stay, as modules do)."""
    if not enabled() or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        gc.enable()
