"""Every limit the service enforces, defined once: HTTP front, request bodies, JSON, job
resources and fair share. `Config` (config.py) takes its defaults for the limits that have a
flag from here; code that checks a limit imports its name from here (README "Limits")."""

from __future__ import annotations

import os
import re
import shutil

MIB = 1024 * 1024

# --- HTTP front (waitress, see elasticthought/http_front.py) ---------------------------------
HTTP_CONNECTION_LIMIT = 2000  # open connections (slow/idle ones are evicted before this fills)
HTTP_HEADER_TIMEOUT = 10.0  # seconds a client may take to send a request's headers
HTTP_MIN_BODY_RATE = 1024  # bytes/s a request body must average once its headers are in
HTTP_IDLE_TIMEOUT = 30  # seconds an idle keep-alive connection stays open
HTTP_CLEANUP_INTERVAL = 1  # seconds between the front's sweeps over its connections
# Free connection slots kept at all times: past this the oldest unfinished or idle connections
# are dropped, so slow clients never fill the budget.
HTTP_SPARE_CONNECTIONS = 100
# Bytes of a body over its route's limit read and dropped before the 413 (so ordinary clients,
# which read the answer only once they have sent the body, see it); past this the front closes.
HTTP_DRAIN_BYTES = 16 * MIB
# Request bodies the front holds at once (being received, or received and waiting for or in a
# request thread), summed over every connection: waitress keeps each body in memory or a
# temporary file until its request ends, so without a bound many large uploads at once could
# fill the temporary folder's disk before any of them is checked. Past it, 503 (retry later).
# 0 = the smaller of HTTP_MAX_HELD_BYTES_CAP and half the temporary folder's free disk at start.
HTTP_MAX_HELD_BYTES_CAP = 4096 * MIB

MIN_HTTP_THREADS = 16  # request threads of the front (`--http-threads` below this is raised)
# Requests that keep a request thread while they wait (`logs?follow=true`, `classify?wait=true`
# on a queued job): at most this many per user at once, and this share of the request threads
# for all users together, so waiting requests never take every thread (api/held_requests.py).
HELD_REQUESTS_PER_USER = 4
HELD_REQUESTS_SHARE = 0.5

# --- Request bodies and JSON ------------------------------------------------------------------
MAX_JSON_BODY_BYTES = 1 * MIB  # a JSON (or any non-upload) request body
MAX_UPLOAD_BYTES = 512 * MIB  # a multipart upload (datafile archive, model, weights, images)
MAX_JSON_DEPTH = 32  # nesting of arrays/objects in a JSON body or JSON form field
# Routes taking multipart uploads (method, path pattern): only they get MAX_UPLOAD_BYTES.
UPLOAD_ROUTES = (
    ("POST", r"/datafiles"),
    ("POST", r"/classifiers"),
    ("POST", r"/training-jobs"),
    ("POST", r"/classifiers/[^/]+/classify"),
)

_UPLOAD_PATTERNS = [(method, re.compile(pattern + r"/?")) for method, pattern in UPLOAD_ROUTES]


UPLOAD_FLAG = "--max-upload-bytes"


def body_limit(method: str, path: str, max_json: int, max_upload: int) -> tuple[int, str]:
    """The largest body a request to `method path` may send, and the flag that sets it."""
    for allowed, pattern in _UPLOAD_PATTERNS:
        if method == allowed and pattern.fullmatch(path):
            return max_upload, UPLOAD_FLAG
    return max_json, "--max-json-body-bytes"


def body_too_large(limit: int, flag: str) -> str:
    """The error text of a body over its route's limit."""
    return f"the request body is larger than this route's limit of {limit} bytes ({flag})"


# --- Password logins (elasticthought/api/login_throttle.py) ----------------------------------
# Failed HTTP Basic logins allowed within LOGIN_FAILURE_WINDOW seconds, per (client address,
# username) and per client address; past either, that client's logins answer 429 with
# Retry-After, without the password being checked (no guess tested, no scrypt run), until the
# oldest failure leaves the window. Behind a reverse proxy the proxy is the client address.
LOGIN_FAILURES_PER_USER = 20
LOGIN_FAILURES_PER_ADDRESS = 200
LOGIN_FAILURE_WINDOW = 300.0
LOGIN_THROTTLE_KEYS = 100_000  # (address, username) pairs and addresses remembered at most
# Password checks (scrypt, 16 MiB and tens of ms each) running at once; a request waiting more
# than PASSWORD_CHECK_WAIT seconds for one answers 503 with Retry-After.
PASSWORD_CHECKS_AT_ONCE = max(1, os.cpu_count() or 1)
PASSWORD_CHECK_WAIT = 5.0

# --- Queue fair share -------------------------------------------------------------------------
PRIORITY_MIN = -100  # `priority` of a training job: orders only its owner's own jobs
PRIORITY_MAX = 100
MAX_QUEUED_JOBS_PER_USER = 100  # jobs of one user waiting in the queue (429 beyond)
# Jobs of one user running at once, across every worker sharing the store (0 = no cap). Fair
# share alone only decides who goes next when a worker frees up: a user who filled every worker
# with week-long jobs would hold the whole cluster until they end. With a cap, workers beyond
# the first 4 always stay open to other users' work; one node with up to 4 workers (the usual
# single-team setup) never notices it. Raise it (or 0) on a cluster one team owns.
MAX_RUNNING_JOBS_PER_USER = 4
MAX_STORED_BYTES_PER_USER = 2048 * MIB  # uploads a user keeps in the blob store (413 beyond)

# --- Job resources ----------------------------------------------------------------------------
DEFAULT_MAX_RUNTIME = 24 * 3600.0  # seconds a job may run when it names no max-runtime
MAX_MAX_RUNTIME = 7 * 24 * 3600.0  # the largest max-runtime a job may ask for
MIN_JOB_MEMORY = 1024 * MIB  # the smallest job memory limit (an interpreter with torch needs it)
MAX_ITERATIONS = 100_000_000  # largest solver max_iter accepted

# --- Archives (elasticthought/archive.py) -----------------------------------------------------
MAX_ARCHIVE_HEADER_BYTES = 1 * MIB  # a pax extended header or GNU long name/link record
MAX_EXTRACT_SECONDS = 600.0  # wall time one archive may take to extract
MAX_EXTRACT_BYTES = 2048 * MIB  # total size of an archive's members
MAX_EXTRACT_FILES = 100_000  # members of one archive (MNIST, CIFAR fit; checked headers-first)

# --- Job disk (a datafile job's download plus its extraction) --------------------------------
JOB_DISK_CAP = 20 * 1024 * MIB  # the default job disk limit is at most this ...
JOB_DISK_FREE_SHARE = 0.5  # ... and at most this share of the work folder's free disk

# --- Downloads made while answering a request (elasticthought/api/request_fetch.py) ----------
# Each runs in a lean child process (never in the server), the request thread waiting for it.
REQUEST_FETCH_SLOTS = 4  # download children running at once (a request past them: 503)
REQUEST_FETCH_TIMEOUT = 20.0  # seconds a prototxt download may take in total
REQUEST_MODEL_FETCH_TIMEOUT = 120.0  # seconds a model download (model-url) may take in total
REQUEST_FETCH_MEMORY = 256 * MIB  # address space of one download child
REQUEST_FETCH_START_GRACE = 5.0  # seconds a download child may take on top of its download

# --- Checks of user nets and models in a bounded child (elasticthought/bounded.py) -----------
VALIDATION_TIMEOUT = 60.0  # seconds a deploy-net check may take
VALIDATION_CONCURRENCY = 2  # checks running at once (one child each)
VALIDATION_QUEUE_WAIT = 30.0  # seconds a request waits for a free check slot (then 503)


def machine_memory_bytes() -> int:
    """Physical memory of this machine (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def default_job_memory_limit(workers: int) -> int:
    """Bytes of address space one job may use: the machine's memory shared among the worker
    slots and the server itself (`workers` + 1 shares), at least `MIN_JOB_MEMORY`."""
    total = machine_memory_bytes()
    if total <= 0:
        return 4096 * MIB
    return max(MIN_JOB_MEMORY, total // (max(1, workers) + 1))


def job_memory_limit(configured_mib: int, workers: int) -> int:
    """The job memory limit in bytes: `--job-memory-limit` (MiB) or the machine's default."""
    if configured_mib > 0:
        return configured_mib * MIB
    return default_job_memory_limit(workers)


def job_disk_limit(configured_mib: int, work_dir: str | os.PathLike) -> int:
    """Bytes one job may write while downloading and extracting: `--job-disk-limit` (MiB), or
    by default the smaller of `JOB_DISK_CAP` and `JOB_DISK_FREE_SHARE` of the free disk of the
    work folder (measured when the job starts)."""
    if configured_mib > 0:
        return configured_mib * MIB
    return _share_of_free_disk(work_dir, JOB_DISK_FREE_SHARE, JOB_DISK_CAP)


def _share_of_free_disk(path: str | os.PathLike, share: float, cap: int) -> int:
    """`share` of the free disk under `path`, at most `cap` (`cap` when it cannot be read)."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return cap
    return min(cap, int(free * share))


def http_max_held_bytes(configured: int) -> int:
    """Request-body bytes the HTTP front holds at once: `--http-max-held-bytes`, or by default
    the smaller of `HTTP_MAX_HELD_BYTES_CAP` and half the free disk of the temporary folder
    (where waitress keeps large bodies), measured at start."""
    if configured > 0:
        return configured
    import tempfile

    return _share_of_free_disk(tempfile.gettempdir(), 0.5, HTTP_MAX_HELD_BYTES_CAP)
