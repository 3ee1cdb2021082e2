"""Device selection for the torch engine: CPU, or CUDA when asked for and available."""

from __future__ import annotations

import torch


class DeviceError(RuntimeError):
    """A device that cannot be used (CUDA asked for but not available, bad index)."""


def resolve_device(device: str | int | torch.device | None = "cpu") -> torch.device:
    """A torch.device for "cpu", "cuda", "cuda:N", an int GPU index or a torch.device.

    CUDA requests fail with `DeviceError` when CUDA is not available. TF32 is turned off, since
    Caffe computes in IEEE float32 (and the golden tolerances assume it).
    """
    if device is None:
        device = "cpu"
    if isinstance(device, int):
        device = f"cuda:{device}"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeviceError(f"bad device {device!r}: {exc}") from None
    if dev.type in ("cpu", "meta"):  # meta: shapes only, no memory (memory estimates)
        return dev
    if dev.type != "cuda":
        raise DeviceError(f"unsupported device {str(dev)!r} (use cpu or cuda[:N])")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {str(dev)!r} requested but CUDA is not available here")
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    if index >= torch.cuda.device_count():
        raise DeviceError(
            f"GPU {index} requested but only {torch.cuda.device_count()} GPU(s) are visible"
        )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda", index)
