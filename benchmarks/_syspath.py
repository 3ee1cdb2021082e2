"""Make `python benchmarks/<name>.py` behave like `python -m benchmarks.<name>`.

Run as a file, a benchmark has this folder first on sys.path, where `queue.py` shadows the
standard library's `queue` (which torch and requests import). Importing this module, first thing
and only in that case, puts the repository root there instead:

    if __name__ == "__main__" and not __package__:  # run as a file: see benchmarks/_syspath.py
        import _syspath  # noqa: F401

(`__name__` is checked too: a `multiprocessing` spawn child re-runs the file as `__mp_main__`
with the parent's sys.path, already fixed, where this folder and so `_syspath` are gone.)
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

sys.path[:] = [str(REPO)] + [p for p in sys.path if Path(p or ".").resolve() != HERE]
