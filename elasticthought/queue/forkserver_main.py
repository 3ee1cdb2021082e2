"""Imported only by the warm fork server, last of its preloaded modules (`warm.py`): it runs
the parent's main module there once, as multiprocessing's own `__main__` preload means to
(Python 3.11's fork server never receives the script's path, so that preload does nothing).
Every job process forked afterwards finds its main module already run and skips it, instead
of running it again (milliseconds of CPU per job, more for a main module that imports much).

`warm.main_preload` names the main module in `MAIN_ENV` (a script: exactly the path
multiprocessing compares in each child, `init_main_from_path`) or `MAIN_MODULE_ENV` (`python
-m pkg.mod`: the module's name, which each child compares with the running main module's
`__spec__`), and the parent's `sys.argv` in `ARGV_ENV`. A main module that fails here is
reported on stderr and left to the children, as before.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback
import types
from multiprocessing import process, spawn

#: The environment variables naming the parent's main script or main module, and its
#: arguments (JSON); read, and dropped, by the fork server.
MAIN_ENV = "ET_FORKSERVER_MAIN"
MAIN_MODULE_ENV = "ET_FORKSERVER_MAIN_MODULE"
ARGV_ENV = "ET_FORKSERVER_ARGV"


def _run_module(name: str) -> None:
    """What multiprocessing does in a child for `python -m name`, done once here."""
    main = types.ModuleType("__mp_main__")
    main.__dict__.update(runpy.run_module(name, run_name="__mp_main__", alter_sys=True))
    sys.modules["__main__"] = sys.modules["__mp_main__"] = main


def _run_main() -> None:
    path = os.environ.pop(MAIN_ENV, "")
    name = os.environ.pop(MAIN_MODULE_ENV, "")
    argv = os.environ.pop(ARGV_ENV, "")
    if not name and not (path and os.path.isfile(path)):
        return
    saved = sys.argv
    process.current_process()._inheriting = True  # as the fork server's own preload does
    try:
        sys.argv = json.loads(argv) if argv else [path or name]  # what a child would have
        if name:
            _run_module(name)
        else:
            spawn.import_main_path(path)
    except BaseException:  # noqa: BLE001 - children then run it themselves, as before
        traceback.print_exc()
    finally:
        sys.argv = saved
        del process.current_process()._inheriting


_run_main()
