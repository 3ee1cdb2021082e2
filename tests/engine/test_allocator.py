"""engine.allocator: a tuned process reuses the memory it frees instead of faulting it in again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from elasticthought.engine import allocator
from tests.support.allocation import CHURN_MIB, CHURN_ROUNDS, round_pages

_PROBE = """
import json
from elasticthought.engine.allocator import keep_freed_memory
from tests.support.allocation import churn_page_faults
tuned = keep_freed_memory()
print(json.dumps({"tuned": tuned, "again": keep_freed_memory(),
                  "faults": churn_page_faults()}))
"""


def _probe(switch: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != allocator.SWITCH}
    if switch is not None:
        env[allocator.SWITCH] = switch
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_tuned_process_faults_freed_memory_in_once_not_every_time() -> None:
    assert CHURN_MIB << 20 <= allocator.MMAP_THRESHOLD_BYTES
    tuned, untuned = _probe(None), _probe("0")
    assert tuned["tuned"] is True and tuned["again"] is True
    assert untuned["tuned"] is False
    pages = round_pages()
    assert untuned["faults"] >= (CHURN_ROUNDS - 2) * pages  # every round maps them again
    assert tuned["faults"] <= 2 * pages  # the first round maps them; the rest reuse them
