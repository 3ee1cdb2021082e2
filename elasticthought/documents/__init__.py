"""The documents the service stores, defined once: below api, jobs and queue.

- `states`: the job states (`State`), final and unusable sets;
- `fields`: document type names and field names every layer reads or writes;
- `status`: what a training runner reports, what the API shows (`STATUS_KEYS`), the metrics
  series, and the bookkeeping fields a job's child may not write (`RESERVED`);
- `model`: one constructor per document type and `submit()`, the one way a job is queued;
- `errors`: `JobError`, an expected job failure with a user-facing reason.

Where a document's files live in the blob store is `elasticthought.blobs.layout`.
"""

from __future__ import annotations

from elasticthought.documents.errors import JobError
from elasticthought.documents.states import (
    CANCELED,
    FAILED,
    FINAL_STATES,
    FINISHED,
    PENDING,
    PROCESSING,
    UNUSABLE,
    State,
)

__all__ = [
    "CANCELED",
    "FAILED",
    "FINAL_STATES",
    "FINISHED",
    "PENDING",
    "PROCESSING",
    "UNUSABLE",
    "JobError",
    "State",
]
