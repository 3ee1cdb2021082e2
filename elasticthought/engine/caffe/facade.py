"""Engine `caffe`: real BVLC Caffe (pycaffe in a child process) behind the `Engine` interface.

Training and the classifier's forward run in Caffe; the evaluation over the test split and
the check of a deploy net against its model use the torch engine, which reads the same
prototxt and .caffemodel files (so both engines' models are evaluated the same way).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elasticthought.engine.caffe.backend import (
    DEFAULT_PREFIX,
    DEFAULT_PYTHON,
    CaffeError,
    caffe_available,
    caffe_env,
)
from elasticthought.engine.interface import EngineError, TrainRun


@functools.lru_cache(maxsize=8)
def _layer_types(python: str, prefix: str) -> frozenset[str]:
    try:
        done = subprocess.run(
            [python, "-c", "import caffe; print('\\n'.join(caffe.layer_type_list()))"],
            env=caffe_env(prefix), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    if done.returncode != 0:
        return frozenset()
    return frozenset(line.strip() for line in done.stdout.splitlines() if line.strip())


class CaffeEngine:
    """Real BVLC Caffe, as configured (`caffe_python`, `caffe_prefix`)."""

    name = "caffe"

    def __init__(self, config: Any = None) -> None:
        self.config = config
        self.python = getattr(config, "caffe_python", None) or DEFAULT_PYTHON
        self.prefix = getattr(config, "caffe_prefix", None) or DEFAULT_PREFIX

    def available(self) -> tuple[bool, str]:
        return caffe_available(self.python, self.prefix)

    def version(self) -> str | None:
        ok, version = self.available()
        return f"BVLC Caffe {version}" if ok else None

    def train(self, run: TrainRun) -> Path | None:
        from elasticthought.engine.caffe.backend import train

        try:
            result = train(
                run.solver_path,
                run.work_dir,
                weights=run.weights if run.resume is None else None,
                snapshot=run.resume,
                callback=run.callback,
                on_iteration=lambda _event: run.on_iteration(),
                cancel_check=run.cancel_check,
                python=self.python,
                prefix=self.prefix,
                log_path=run.log_path,
            )
        except CaffeError as exc:
            raise EngineError(str(exc)) from None
        if result.state != "finished":
            return None
        model = result.model or f"{run.snapshot_prefix}_iter_{result.iteration}.caffemodel"
        if not os.path.exists(model):
            raise EngineError(
                "real Caffe finished without writing a model (enable snapshot_after_train)"
            )
        final = run.work_dir / "final.caffemodel"
        shutil.copyfile(model, final)
        return final

    def evaluate(
        self, net_path: str, weights: str, count: int, gpu: bool,
        cancel_check: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        from elasticthought.engine.torch.facade import TorchEngine

        return TorchEngine().evaluate(net_path, weights, count, gpu, cancel_check)

    def classifier(self, doc: dict, work: Path, model_path: str, gpu: bool) -> Any:  # noqa: ARG002
        from elasticthought.engine.caffe.deploy import load_caffe_deploy

        return load_caffe_deploy(doc, work, model_path, self.config)

    def check_deploy(self, text: str, model: bytes) -> Any:
        from elasticthought.engine.torch.facade import TorchEngine

        return TorchEngine().check_deploy(text, model)

    def layer_types(self) -> frozenset[str]:
        return _layer_types(self.python, self.prefix)

    def refusal(self, type_name: str) -> str | None:
        """Caffe's own registry decides; the torch engine's names the nearest type."""
        if type_name in self.layer_types():
            return None
        from elasticthought.engine.torch.facade import TorchEngine

        return TorchEngine().refusal(type_name) or f"unsupported layer type {type_name!r}"
