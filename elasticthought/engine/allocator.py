"""The C allocator of a process that trains or tests: freed tensor memory is kept for reuse.

torch's CPU tensors come from `malloc`. glibc hands a block over its mmap threshold (128 KiB
at first, raised on its own up to the size of the largest block freed, at most 32 MiB) straight
from the kernel and gives it back on `free`, and it gives back the free top of its heap once
that passes its trim threshold (twice the mmap threshold). A training iteration frees and
allocates the same megabyte-sized blobs every time, more of them together than that, so the
kernel maps fresh pages for them each iteration and every page faults when first written: LeNet
(batch 64) at one thread took 34,000 to 180,000 page faults per 150 iterations and 5-20% more
time than with the memory kept (about 11,000 faults). Caffe allocates its blobs once.

`keep_freed_memory()` (glibc's `mallopt`) sets both thresholds for the rest of the process:
blocks up to `MMAP_THRESHOLD_BYTES` come from the heap, and its free top is kept until it
passes `TRIM_THRESHOLD_BYTES`. A process's peak stays its peak (what was freed is reused, not
added to); memory freed after the peak is returned only past the trim threshold, which suits a
job's process (it ends with its job) and `elasticthought train`. Numerics are untouched.

Setting the trim threshold turns glibc's self-adjusting thresholds off, so it is set only when
the mmap threshold was accepted (otherwise every block over 128 KiB would be mapped afresh).
Another C library (no `mallopt`), or `ELASTICTHOUGHT_KEEP_FREED_MEMORY=0`, leaves all as it is.
"""

from __future__ import annotations

import ctypes
import os

#: Set to "0" to leave the allocator as the C library sets it.
SWITCH = "ELASTICTHOUGHT_KEEP_FREED_MEMORY"
#: Blocks up to this size come from the heap: glibc's own upper bound for the threshold it
#: adjusts itself (64-bit), so bigger blocks are mapped and unmapped as they always were and the
#: heap fragments no more than it could before.
MMAP_THRESHOLD_BYTES = 32 << 20
#: The free top of the heap is given back to the kernel past this size.
TRIM_THRESHOLD_BYTES = 512 << 20
# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_kept = False


def keep_freed_memory() -> bool:
    """Tune this process's allocator as the module docstring says (once); True when it is
    tuned (now or before), False when switched off or the C library has no `mallopt`."""
    global _kept
    if _kept:
        return True
    if os.environ.get(SWITCH, "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the symbols already loaded: the C library's
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if not mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        return False
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    _kept = True
    return True
