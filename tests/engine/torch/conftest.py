"""Shared setup for the torch engine tests: few threads (the CI machine has 2 cores) and the
golden data location."""

from __future__ import annotations

from pathlib import Path

import torch

torch.set_num_threads(1)

GOLDEN = Path("/work/shared/golden")
