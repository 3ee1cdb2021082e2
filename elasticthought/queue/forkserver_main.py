"""Imported only by the warm fork server, last of its preloaded modules (`warm.py`): it runs
the parent's main script there once, as multiprocessing's own `__main__` preload means to
(Python 3.11's fork server never receives the script's path, so that preload does nothing).
Every job process forked afterwards finds the script already run and skips it, instead of
running it again (milliseconds of CPU per job, more for a script that imports much).

The path comes in `MAIN_ENV`, set by `warm.warm_context` to exactly what multiprocessing
compares in each child (`init_main_from_path`), the parent's `sys.argv` in `ARGV_ENV`. A
script that fails here is reported on stderr and left to the children, as before.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from multiprocessing import process, spawn

#: The environment variables naming the parent's main script and its arguments (JSON).
MAIN_ENV = "ET_FORKSERVER_MAIN"
ARGV_ENV = "ET_FORKSERVER_ARGV"


def _run_main() -> None:
    path = os.environ.pop(MAIN_ENV, "")
    argv = os.environ.pop(ARGV_ENV, "")
    if not path or not os.path.isfile(path):
        return
    saved = sys.argv
    process.current_process()._inheriting = True  # as the fork server's own preload does
    try:
        sys.argv = json.loads(argv) if argv else [path]  # what a child would have
        spawn.import_main_path(path)
    except BaseException:  # noqa: BLE001 - children then run the script themselves, as before
        traceback.print_exc()
    finally:
        sys.argv = saved
        del process.current_process()._inheriting


_run_main()
