"""The engines, behind one registry: `get_engine(name, config)` -> an `Engine`.

`torch` (our Caffe-compatible PyTorch trainer, always present) and `caffe` (real BVLC Caffe
through pycaffe, when installed). Jobs, capability probing and the API's checks choose and
ask an engine only through here; nothing outside this module tests an engine's name.
"""

from __future__ import annotations

import importlib
from typing import Any

from elasticthought.engine.interface import Engine

TORCH = "torch"
CAFFE = "caffe"
#: Every engine a job may ask for, in the API's order.
ENGINE_NAMES = (TORCH, CAFFE)
#: The engine a job runs on when it names none.
DEFAULT_ENGINE = TORCH
#: The engine that checks what the API accepts for every engine: a solver's layer types, a
#: deploy net against its model (both engines read the same prototxt and .caffemodel files).
CHECKING_ENGINE = TORCH
#: Engines every worker offers without probing.
ALWAYS_AVAILABLE = (TORCH,)
#: Engines whose CPU classifiers the API's warm inference process serves (`classify?wait=true`).
WARM_ENGINES = (TORCH,)

_IMPLEMENTATIONS = {
    TORCH: "elasticthought.engine.torch.facade:TorchEngine",
    CAFFE: "elasticthought.engine.caffe.facade:CaffeEngine",
}


class UnknownEngine(ValueError):
    """A name that is not one of `ENGINE_NAMES`."""


def known(name: Any) -> bool:
    """Whether `name` names an engine."""
    return isinstance(name, str) and name in _IMPLEMENTATIONS


def engine_or_default(name: Any) -> str:
    """`name`, or the default engine when it is empty."""
    return name or DEFAULT_ENGINE


def get_engine(name: str | None, config: Any) -> Engine:
    """The engine called `name` (the default when None), set up from `config` (its Caffe
    interpreter and prefix). Its module is imported only now."""
    name = engine_or_default(name)
    if not known(name):
        raise UnknownEngine(f"unknown engine {name!r} ({' or '.join(ENGINE_NAMES)})")
    module, _, cls = _IMPLEMENTATIONS[name].partition(":")
    return getattr(importlib.import_module(module), cls)(config)


def engine_version(name: str | None, config: Any) -> str | None:
    """The engine `name` in words with its version (None when it cannot run here)."""
    return get_engine(name, config).version()


def available_engines(config: Any) -> list[str]:
    """The engines that can run here: the ones always present, plus each other that its own
    probe finds (`Engine.available`)."""
    found = list(ALWAYS_AVAILABLE)
    for name in ENGINE_NAMES:
        if name in found:
            continue
        try:
            runnable = get_engine(name, config).available()[0]
        except ImportError:
            runnable = False
        if runnable:
            found.append(name)
    return found
