"""Page faults of an allocation churn: what `engine.allocator.keep_freed_memory` saves."""

from __future__ import annotations

import resource

#: Rounds of `churn_page_faults`.
CHURN_ROUNDS = 8
#: Blocks allocated together in each round (as a training iteration allocates its blobs).
CHURN_BLOCKS = 4
#: Their size: 4 blocks of 8 MiB freed together pass glibc's own trim threshold (twice the
#: largest block freed), so an untuned process gives them back and faults them in again every
#: round; they stay under `engine.allocator.MMAP_THRESHOLD_BYTES`, so a tuned one reuses them.
CHURN_MIB = 8


def churn_page_faults(
    mib: int = CHURN_MIB, rounds: int = CHURN_ROUNDS, blocks: int = CHURN_BLOCKS
) -> int:
    """`rounds` times: allocate `blocks` zero-filled blocks of `mib` MiB, then free them all;
    the minor page faults that took. Memory kept for reuse faults about once per page of one
    round; memory handed back to the kernel after each round faults `rounds` times as often."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        held = [bytearray(mib << 20) for _ in range(blocks)]  # zero-filled: every page written
        del held
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def round_pages(mib: int = CHURN_MIB, blocks: int = CHURN_BLOCKS) -> int:
    """Pages of one round of `churn_page_faults`."""
    return blocks * (mib << 20) // resource.getpagesize()
