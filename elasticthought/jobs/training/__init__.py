"""The training-job runner, in its child process, as named steps:

- `prepare`: wait for the solver's dataset, fetch its splits (`jobs.workspace`), rewrite the
  solver and net for this job, fetch fine-tuning weights;
- `resume`: after a lost lease, continue from the newest complete snapshot;
- `progress`: the engine's events as job fields, the metrics series, snapshot and log uploads;
- `run`: the job from start to end, the engine chosen through `engine.registry`, then the
  evaluation of the final model and what a classifier needs from it.

Blob keys are `elasticthought.blobs.layout`'s; the fields written are `documents.status`'s.
"""

from __future__ import annotations

from elasticthought.jobs.training.run import requirements, run

__all__ = ["requirements", "run"]
