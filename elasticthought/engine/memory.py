"""The least memory a solver's nets need for their blobs, for either engine.

A solver holds its TRAIN net and (when it tests) its TEST net at once. Their blob shapes come
from shape inference (`engine.torch.shapes`, on torch's meta device: no memory is used); both
engines build the same shapes from the same prototxt, so one estimate serves both. Counted, in
float32:
- TRAIN: every blob's data, and its diff except for the data layers' tops (Caffe never fills
  their diff); every parameter's data and diff;
- TEST: every blob's data (no backward; parameters are shared with the TRAIN net).
Not counted: solver history (momentum), im2col and other workspace, prefetched batches, the
engine itself, and the blobs shape inference could not see. The result is a lower bound: a net
above the memory limit can never run under it, a net below may still not fit (the limit then
ends it at run time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from elasticthought.engine.netstate import filter_net

FLOAT_BYTES = 4


@dataclass(frozen=True)
class NetNeed:
    """The least bytes one phase's net needs for its blobs."""

    phase: str
    bytes: int
    batch_size: int | None


def _count(shape: tuple[int, ...]) -> int:
    return math.prod(int(d) for d in shape)


def phase_need(net: Any, phase: str, stages: tuple[str, ...] = (), level: int = 0) -> NetNeed:
    """The least bytes the blobs of `net` (a NetParameter, any phase) need in `phase`."""
    from elasticthought.engine.torch.shapes import infer_shapes

    shapes = infer_shapes(filter_net(net, phase, stages, level), phase)
    blobs = sum(_count(s) for s in shapes.blobs.values())
    if phase == "TRAIN":
        no_diff = sum(_count(shapes.blobs[t]) for t in shapes.data_tops)
        params = sum(_count(s) for s in shapes.params.values())
        values = 2 * blobs - no_diff + 2 * params
    else:
        values = blobs
    return NetNeed(phase, values * FLOAT_BYTES, shapes.batch_size)


def solver_needs(solver: Any, net: Any) -> list[NetNeed]:
    """The TRAIN net's need and, when the solver tests, the TEST net's (one test net: Caffe
    builds one per `test_iter`, all alike for a single net)."""
    train_state = solver.train_state
    needs = [phase_need(net, "TRAIN", tuple(train_state.stage), int(train_state.level))]
    if len(solver.test_iter) and int(solver.test_iter[0]) > 0:
        state = solver.test_state[0] if len(solver.test_state) else None
        stages = tuple(state.stage) if state is not None else ()
        level = int(state.level) if state is not None else 0
        needs.append(phase_need(net, "TEST", stages, level))
    return needs


def size_text(n: int) -> str:
    """Bytes in words: "38.2 GiB", "512 MiB"."""
    gib = n / 1024**3
    if gib >= 1:
        return f"{gib:.1f} GiB".replace(".0 GiB", " GiB")
    return f"{math.ceil(n / 1024**2)} MiB"


def describe(needs: list[NetNeed]) -> str:
    """ "at least 38 GiB for their blobs at batch size 100000000 (TRAIN) and ... (TEST)"."""
    total = sum(n.bytes for n in needs)
    parts = [
        f"{size_text(n.bytes)} at batch size {n.batch_size} ({n.phase})"
        if n.batch_size
        else f"{size_text(n.bytes)} ({n.phase})"
        for n in needs
    ]
    return f"at least {size_text(total)} for their blobs: " + " and ".join(parts)
