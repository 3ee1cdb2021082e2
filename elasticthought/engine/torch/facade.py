"""Engine `torch`: our Caffe-compatible PyTorch trainer behind the `Engine` interface."""

from __future__ import annotations

import functools
import importlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elasticthought.engine.interface import EngineError, TrainRun

log = logging.getLogger(__name__)

#: Modules whose import fills the layer registry.
LAYER_MODULES = ("elasticthought.engine.torch.layers", "elasticthought.engine.torch.data")


def torch_version() -> str:
    """This service's version and the PyTorch it runs on."""
    import torch

    from elasticthought import __version__

    return f"torch-engine {__version__} (PyTorch {torch.__version__})"


def _device(gpu: bool) -> str:
    return "cuda:0" if gpu else "cpu"


class TorchEngine:
    """The torch engine (always available)."""

    name = "torch"

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def available(self) -> tuple[bool, str]:
        return True, torch_version()

    def version(self) -> str | None:
        return torch_version()

    def train(self, run: TrainRun) -> Path | None:
        from elasticthought.engine.torch.solver import SolverError, get_solver

        cwd = os.getcwd()
        os.chdir(run.work_dir)
        solver = None
        try:
            solver = get_solver(
                str(run.solver_path), device=_device(run.gpu), callback=run.callback,
                cancel_check=run.cancel_check,
            )  # fmt: skip
            if run.weights is not None and run.resume is None:
                solver.load_weights(str(run.weights))
            passes = [0]

            def count_pass() -> None:
                passes[0] += 1
                if passes[0] % max(1, solver.param.iter_size) == 0:
                    run.on_iteration()

            solver.add_before_forward(count_pass)
            solver.solve(resume_file=str(run.resume) if run.resume else None)
            if solver.requested_early_exit:
                return None
            final = run.work_dir / "final.caffemodel"
            solver.net.save(final)
            return final
        except (SolverError, ValueError) as exc:
            raise EngineError(f"training failed: {exc}") from None
        finally:
            if solver is not None:
                solver.close()
            os.chdir(cwd)

    def evaluate(
        self, net_path: str, weights: str, count: int, gpu: bool,
        cancel_check: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        from elasticthought.engine.torch.evaluate import evaluate

        return evaluate(net_path, weights, count, device=_device(gpu), cancel_check=cancel_check)

    def classifier(self, doc: dict, work: Path, model_path: str, gpu: bool) -> Any:
        from elasticthought.engine.torch.deploy import load_deploy

        return load_deploy(doc["specification"], model_path, device="cuda" if gpu else "cpu")

    def check_deploy(self, text: str, model: bytes) -> Any:
        from elasticthought.engine.torch.deploy import load_deploy

        return load_deploy(text, model)

    def refusal(self, type_name: str) -> str | None:
        from elasticthought.engine.torch.layer import UnsupportedLayer, layer_class

        _register_layers()
        try:
            layer_class(type_name)
        except UnsupportedLayer as exc:
            return str(exc)
        return None

    def layer_types(self) -> frozenset[str]:
        from elasticthought.engine.torch.layer import LAYERS

        _register_layers()
        return frozenset(LAYERS)


@functools.cache
def _register_layers() -> None:
    """Import every layer module once (each registers its layer types)."""
    for name in LAYER_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            log.warning("cannot import %s: %s", name, exc)
