"""What a worker can run: engines and GPUs, and why a job cannot run anywhere."""

from __future__ import annotations

import os
from collections.abc import Iterable

from elasticthought.config import Config
from elasticthought.engine.registry import available_engines

NO_WORKER = "no worker is running"  # the pending reason when no worker announces itself


def _probe_gpus() -> list[int]:
    if not os.path.exists("/proc/driver/nvidia/gpus") and not os.path.exists("/dev/nvidiactl"):
        return []
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return list(range(torch.cuda.device_count()))


def probe_capabilities(config: Config) -> dict:
    """{"engines": [...], "gpus": [device ids]}. Engines: `config.engines` when set, else
    those the engine registry finds runnable here (torch always; caffe when
    `config.caffe_python` runs pycaffe from `config.caffe_prefix`). GPUs: `config.gpus` when
    set, else the CUDA devices torch sees."""
    configured = [e.strip() for e in getattr(config, "engines", "").split(",") if e.strip()]
    engines = configured or available_engines(config)
    gpus = config.gpu_ids if config.gpus.strip() else _probe_gpus()
    return {"engines": sorted(set(engines)), "gpus": gpus}


def missing(capabilities: dict, needs: dict) -> str | None:
    """Why a worker with `capabilities` cannot run a job that `needs` (None = it can)."""
    engine = needs.get("engine")
    if engine and engine not in capabilities.get("engines", []):
        return f"engine '{engine}'"
    gpu = int(needs.get("gpu") or 0)
    if gpu and len(capabilities.get("gpus", [])) < gpu:
        return f"{gpu} GPU" + ("s" if gpu > 1 else "")
    return None


def describe(needs: dict) -> str:
    """The requirements in words: "engine 'caffe' and 1 GPU"."""
    parts = []
    if needs.get("engine"):
        parts.append(f"engine '{needs['engine']}'")
    gpu = int(needs.get("gpu") or 0)
    if gpu:
        parts.append(f"{gpu} GPU" + ("s" if gpu > 1 else ""))
    return " and ".join(parts) or "nothing"


def pending_reason(worker_caps: Iterable[dict], needs: dict) -> str | None:
    """Why no live worker can run the job (None when one can)."""
    caps = list(worker_caps)
    if not caps:
        return NO_WORKER
    if any(missing(c, needs) is None for c in caps):
        return None
    return f"no live worker can run it: none offers {describe(needs)}"
