"""What every engine offers (`Engine`), and what it takes and gives back.

An engine trains a solver (`train`), evaluates a trained model on the whole test split
(`evaluate`), loads a classifier once and classifies many batches with it (`classifier`),
checks a deploy net against a model before a classifier is stored (`check_deploy`),
says which layer types it implements (`layer_types`), whether it can run here (`available`)
and in what version (`version`). Engines are chosen by name in `engine.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class EngineError(RuntimeError):
    """Training could not run or failed; the message is the reason, for the job's log."""


class EvaluationError(ValueError):
    """The net has nothing to evaluate with (no data layer, no Accuracy or SoftmaxWithLoss
    layer, an empty test split)."""


class DeployError(ValueError):
    """The deploy net, the model, or the two together cannot classify (the reason says why)."""


@dataclass
class TrainRun:
    """One training run as a job prepared it (all paths local, in the job's work dir)."""

    solver_path: Path
    work_dir: Path
    log_path: Path
    snapshot_prefix: str
    callback: Callable[[dict], None]  # progress events: train, test, snapshot, done
    on_iteration: Callable[[], None]  # one more training iteration completed
    cancel_check: Callable[[], bool]
    weights: Path | None = None  # fine-tune from these weights (ignored when resuming)
    resume: Path | None = None  # a .solverstate to continue from
    gpu: bool = False


class Classifier(Protocol):
    """A deploy net with its weights, loaded once."""

    input: str
    output: str
    outputs: int
    applies_softmax: bool

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """N x K class probabilities of a N x C x H x W float32 batch (`DeployError`)."""
        ...


class Engine(Protocol):
    """One training/inference engine."""

    name: str

    def available(self) -> tuple[bool, str]:
        """(True, version) when it can run on this machine, else (False, the reason)."""
        ...

    def version(self) -> str | None:
        """The engine in words with its version, as job documents record it (None when it
        cannot run here)."""
        ...

    def train(self, run: TrainRun) -> Path | None:
        """Train; the final weights (`final.caffemodel` in the work dir), or None when
        canceled. Raises `EngineError` with the reason."""
        ...

    def evaluate(
        self, net_path: str, weights: str, count: int, gpu: bool,
        cancel_check: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """The TEST net over the `count` test records exactly once: accuracy and loss."""
        ...

    def classifier(self, doc: dict, work: Path, model_path: str, gpu: bool) -> Classifier:
        """The classifier document `doc`'s deploy net with the model at `model_path`."""
        ...

    def check_deploy(self, text: str, model: bytes) -> Classifier:
        """Build the deploy net `text` with the weights `model` to check they fit: every
        mismatch is a `DeployError` naming the layer (a syntax error a `FormatError`)."""
        ...

    def layer_types(self) -> frozenset[str]:
        """The layer types it implements."""
        ...

    def refusal(self, type_name: str) -> str | None:
        """Why a net with a layer of `type_name` is refused (naming the nearest supported type
        and all of them), or None when the type is supported."""
        ...
