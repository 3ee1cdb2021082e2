"""The metrics this service records itself (counters and histograms), one definition each.

Imported on first use by `elasticthought.metrics.hooks`, after `process.setup` chose the value
class (multi-process files or in-memory). Gauges of shared state (jobs by state, workers, the
scaling signal) are not here: `state.StateCollector` computes them from the store at scrape time.
Labels are bounded: document types, states, engines, GPU need, route templates, HTTP methods and
statuses, backend and operation names; never a user, job or worker id.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

PREFIX = "elasticthought"
JOB_LABELS = ("type", "engine", "gpu")

# Seconds: from a few milliseconds (an API call) to hours (a training job).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CALL_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
JOB_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)

http_requests = Counter(
    f"{PREFIX}_http_requests",
    "HTTP requests answered, by method, route template and status",
    ("method", "route", "status"),
)
http_duration = Histogram(
    f"{PREFIX}_http_request_duration_seconds",
    "HTTP request latency, by method and route template",
    ("method", "route"),
    buckets=HTTP_BUCKETS,
)
jobs_started = Counter(
    f"{PREFIX}_jobs_started",
    "Jobs claimed by a worker (one per attempt)",
    JOB_LABELS,
)
jobs_ended = Counter(
    f"{PREFIX}_jobs_ended",
    "Jobs that reached a final state (finished_successfully, failed, canceled)",
    (*JOB_LABELS, "state"),
)
jobs_requeued = Counter(
    f"{PREFIX}_jobs_requeued",
    "Running jobs returned to pending (reason: shutdown = a worker drained, "
    "lease_expired = a worker was lost)",
    (*JOB_LABELS, "reason"),
)
job_duration = Histogram(
    f"{PREFIX}_job_duration_seconds",
    "Run time of the last attempt of jobs that ended (started-at to finished-at)",
    (*JOB_LABELS, "state"),
    buckets=JOB_BUCKETS,
)
job_queue_wait = Histogram(
    f"{PREFIX}_job_queue_wait_seconds",
    "Time from a job's creation to its first claim",
    JOB_LABELS,
    buckets=JOB_BUCKETS,
)
training_iterations = Counter(
    f"{PREFIX}_training_iterations",
    "Training iterations run (rate() of it = iterations per second)",
    ("engine",),
)
store_calls = Histogram(
    f"{PREFIX}_store_call_duration_seconds",
    "Document store call latency (the changes feed's longpoll is not timed)",
    ("backend", "op"),
    buckets=CALL_BUCKETS,
)
store_errors = Counter(
    f"{PREFIX}_store_call_errors",
    "Document store calls that raised (a conflict or a missing document included)",
    ("backend", "op", "error"),
)
blob_calls = Histogram(
    f"{PREFIX}_blob_call_duration_seconds",
    "Blob store call latency (open: until the stream is open)",
    ("backend", "op"),
    buckets=CALL_BUCKETS,
)
blob_errors = Counter(
    f"{PREFIX}_blob_call_errors",
    "Blob store calls that raised",
    ("backend", "op", "error"),
)
