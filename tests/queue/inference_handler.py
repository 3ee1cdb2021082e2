"""A test handler for the warm inference process (test-only: it can crash on purpose).

`open_test_model(env, spec)` "loads" a model: it holds `spec["mb"]` MB of memory (touched, so
the process's memory grows by that much) and counts its loads in `spec["loads-file"]` when
given. Its `run(payloads)` answers each payload (a dict) with the model's name, the payload's
`value` doubled, the number of payloads served together and the process id; a payload with
`action` "segv" crashes the process, "abort" aborts it, "error" raises, "allocate" touches
`mb` MB more for the request.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any


class TestModel:
    def __init__(self, env: Any, spec: dict) -> None:
        self.name = spec["name"]
        self.memory = bytearray(int(spec.get("mb", 1)) * 1024 * 1024)
        for i in range(0, len(self.memory), 4096):
            self.memory[i] = 1
        (env.work_dir / "model").write_text(self.name)
        if spec.get("loads-file"):
            with open(spec["loads-file"], "a") as out:
                out.write(self.name + "\n")

    def run(self, payloads: list[dict]) -> list[dict]:
        for payload in payloads:
            if payload.get("action") == "segv":
                ctypes.string_at(0)
            if payload.get("action") == "abort":
                os.abort()
            if payload.get("action") == "error":
                raise ValueError("the test model failed as asked")
            if payload.get("action") == "allocate":
                extra = bytearray(int(payload["mb"]) * 1024 * 1024)
                for i in range(0, len(extra), 4096):
                    extra[i] = 1
        return [
            {"model": self.name, "value": 2 * p.get("value", 0), "together": len(payloads),
             "pid": os.getpid()}
            for p in payloads
        ]  # fmt: skip


def open_test_model(env: Any, spec: dict) -> TestModel:
    return TestModel(env, spec)
