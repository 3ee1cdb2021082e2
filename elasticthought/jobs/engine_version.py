"""The engine a job runs on, in words with its version, as job documents record it
(`engine-version`): "torch-engine 0.1.0 (PyTorch 2.13.0)" or "BVLC Caffe 1.0.0"."""

from __future__ import annotations

from typing import Any


def torch_version() -> str:
    """The torch engine: this service's version and the PyTorch it runs on."""
    import torch

    from elasticthought import __version__

    return f"torch-engine {__version__} (PyTorch {torch.__version__})"


def caffe_version(python: str, prefix: str) -> str | None:
    """Real Caffe's version as pycaffe under `python` reports it (None when it cannot run)."""
    from elasticthought.engine.caffe.backend import caffe_available

    ok, version = caffe_available(python, prefix)
    return f"BVLC Caffe {version}" if ok else None


def engine_version(engine: str, config: Any) -> str | None:
    """`engine` ("torch" or "caffe") with its version, for `config`'s Caffe install."""
    if engine == "caffe":
        return caffe_version(config.caffe_python, config.caffe_prefix)
    return torch_version()
