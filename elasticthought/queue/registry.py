"""Runners: which function runs a job document of each type, and what it needs.

A runner is registered per document `type` as `"module:function"`. The function runs in the
job's own child process (spawn start method) as `fn(ctx: JobContext) -> dict | None`:

- the returned dict is merged into the job document, which then ends `finished_successfully`;
- an exception fails the job; `processing-log` becomes the exception's message (raise
  `JobError("reason")` for expected failures with a user-facing reason);
- the child never writes the job document itself: the worker (parent) does, with fencing.

`requirements(doc) -> {"engine": str | None, "gpu": bool | int}` says what a worker must offer to
run that job (evaluated in the worker, from the job document alone: copy what it needs onto the
job document when creating it). Without one, the job's own `engine` and `gpu` fields are used.
`dependencies(doc) -> [(what, job id), ...]` names the jobs it needs finished first (a dataset's
datafiles, a training job's dataset): workers leave it pending while one of them is pending or
processing, and `pending-reason` names it.

Job documents need ids made by `new_id(type, owner)` (what `Store.create` does when no `_id` is
given) and `processing-state: pending`: workers pick jobs off the changes feed by id prefix.
Runner modules register at import; workers import the modules named by `Config.runner_modules`
(default `elasticthought.jobs`) before they claim anything.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# The job states and JobError are the documents' (re-exported for runners).
from elasticthought.documents.errors import JobError
from elasticthought.documents.states import (
    CANCELED,
    FAILED,
    FINAL_STATES,
    FINISHED,
    PENDING,
    PROCESSING,
)

__all__ = [
    "CANCELED", "FAILED", "FINAL_STATES", "FINISHED", "PENDING", "PROCESSING", "JobError",
    "RUNNERS", "Runner", "register_runner", "runner_for", "unregister_runner",
]  # fmt: skip

Requirements = Callable[[dict], dict]
Dependencies = Callable[[dict], list[tuple[str, str]]]


@dataclass(frozen=True)
class Runner:
    """How to run documents of one type."""

    doc_type: str
    target: str
    requirements: Requirements | None = None
    dependencies: Dependencies | None = None

    def waits_for(self, doc: dict) -> list[tuple[str, str]]:
        """The (kind, id) of the jobs `doc` needs finished before it can run."""
        if self.dependencies is None:
            return []
        try:
            return [(str(what), str(dep)) for what, dep in self.dependencies(doc) if dep]
        except (KeyError, TypeError, ValueError, AttributeError):
            return []  # a malformed document: its runner reports the problem

    def needs(self, doc: dict) -> dict:
        """What a worker must offer to run `doc`: {"engine": str | None, "gpu": int}."""
        raw = self.requirements(doc) if self.requirements else default_requirements(doc)
        return normalize_requirements(raw)


RUNNERS: dict[str, Runner] = {}


def register_runner(
    doc_type: str,
    target: str,
    requirements: Requirements | None = None,
    dependencies: Dependencies | None = None,
) -> Runner:
    """Run documents of `doc_type` with `target` ("module:function"); re-registering replaces."""
    module, sep, func = target.partition(":")
    if not sep or not module or not func:
        raise ValueError(f"runner target must be 'module:function', got {target!r}")
    runner = Runner(doc_type, target, requirements, dependencies)
    RUNNERS[doc_type] = runner
    return runner


def unregister_runner(doc_type: str) -> None:
    RUNNERS.pop(doc_type, None)


def runner_for(doc_type: str | None) -> Runner | None:
    return RUNNERS.get(doc_type or "")


def load_target(target: str) -> Callable[..., Any]:
    """Import and return the function named by "module:function" (dots allowed after ':')."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def import_runner_modules(names: str | list[str]) -> list[str]:
    """Import the comma-separated runner modules (each registers its runners); return them.
    A missing module named in the default is skipped; any other import error propagates."""
    modules = names.split(",") if isinstance(names, str) else list(names)
    done = []
    for name in (m.strip() for m in modules):
        if not name:
            continue
        importlib.import_module(name)
        done.append(name)
    return done


def import_available_runner_modules(names: str) -> list[str]:
    """Import the comma-separated runner modules that exist; return the names of those that
    do not (a module that exists but fails to import still raises)."""
    missing = []
    for name in (n.strip() for n in names.split(",")):
        if not name:
            continue
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            missing.append(name)
    return missing


def default_requirements(doc: dict) -> dict:
    """The job's own `engine` and `gpu` fields."""
    return {"engine": doc.get("engine"), "gpu": doc.get("gpu", False)}


def normalize_requirements(raw: dict | None) -> dict:
    """{"engine": str | None, "gpu": int (GPUs needed)}."""
    raw = raw or {}
    engine = raw.get("engine") or None
    gpu = raw.get("gpu", False)
    if isinstance(gpu, bool):
        count = 1 if gpu else 0
    else:
        try:
            count = max(0, int(gpu))
        except (TypeError, ValueError):
            count = 0
    return {"engine": str(engine) if engine else None, "gpu": count}
