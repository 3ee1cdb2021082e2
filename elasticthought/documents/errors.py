"""`JobError`: the failure a job runner raises on purpose."""

from __future__ import annotations


class JobError(Exception):
    """An expected job failure; its message becomes the job's `processing-log`."""
