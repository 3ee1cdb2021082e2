"""Turn the driver's per-iteration events into the torch engine's progress events.

The torch solver (elasticthought/engine/torch/solver.py) calls `callback(event)` with
`train` (every `display` iterations, each one when display is 0: iteration, smoothed loss, lr,
outputs, iter_per_s), `test` (iteration, net, outputs), `snapshot` (iteration, caffemodel,
solverstate) and `done` (iteration, stopped_early). The caffe engine gives the runner the same.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]


class ProgressTranslator:
    """Stateful: feed it the driver's `start`, `iteration` and `done`/`canceled` events."""

    def __init__(self) -> None:
        self.display = 0
        self._seconds = 0.0
        self._count = 0

    def start(self, event: Event) -> list[Event]:
        self.display = int(event.get("display", 0) or 0)
        return []

    def iteration(self, event: Event) -> list[Event]:
        it = int(event["iteration"])
        out: list[Event] = [
            {"event": "test", "iteration": it, "net": k, "outputs": outputs}
            for k, outputs in enumerate(event.get("tests") or [])
        ]
        self._seconds += float(event.get("seconds") or 0.0)
        self._count += 1
        if not self.display or it % self.display == 0:
            per_s = self._count / self._seconds if self._seconds > 0 else 0.0
            self._seconds, self._count = 0.0, 0
            out.append(
                {
                    "event": "train",
                    "iteration": it,
                    "loss": event["smoothed_loss"],
                    "lr": event["lr"],
                    "outputs": event.get("outputs", {}),
                    "iter_per_s": per_s,
                }
            )
        out.extend(_snapshots(event.get("snapshots") or [], int(event["iter"])))
        return out

    def end(self, event: Event) -> list[Event]:
        it = int(event["iter"])
        out = _snapshots(event.get("snapshots") or [], it)
        out.extend(
            {"event": "test", "iteration": it, "net": k, "outputs": outputs}
            for k, outputs in enumerate(event.get("tests") or [])
        )
        out.append(
            {"event": "done", "iteration": it, "stopped_early": event.get("event") == "canceled"}
        )
        return out


def _snapshots(paths: list[str], iteration: int) -> list[Event]:
    models = [p for p in paths if not p.endswith((".solverstate", ".solverstate.h5"))]
    states = [p for p in paths if p.endswith((".solverstate", ".solverstate.h5"))]
    return [
        {"event": "snapshot", "iteration": iteration, "caffemodel": model, "solverstate": state}
        for model, state in zip(models, states, strict=False)
    ]
