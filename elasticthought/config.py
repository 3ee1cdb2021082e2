"""Service configuration from command-line flags and `ET_*` environment variables.

Every option is a flag `--name-with-dashes` and a variable `ET_NAME_WITH_UNDERSCORES`; the flag
wins over the variable, the variable over the default. Adding an option = one `Option` below.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from elasticthought import limits


def _bool(text: str | bool) -> bool:
    if isinstance(text, bool):
        return text
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


@dataclass
class Config:
    """All settings of `serve` and `worker`. Field help texts become `--help` lines."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8080, metadata={"help": "TCP port to listen on"})
    data_dir: str = field(
        default="./et-data", metadata={"help": "folder for the embedded store, blobs and work"}
    )
    store: str = field(
        default="",
        metadata={
            "help": "document store URL: sqlite:///ABS/PATH, sqlite:REL/PATH or "
            "http(s)://HOST:PORT/DB (Sync Gateway admin port, CouchDB, PouchDB Server); "
            "default sqlite:<data-dir>/elasticthought.db",
            "aliases": ("--sync-gw-url", "--sync-gw"),  # the seed's spellings
        },
    )
    blobs: str = field(
        default="",
        metadata={
            "help": "blob store URL: file:///ABS/DIR or file:REL/DIR; "
            "default file:<data-dir>/blobs",
            "aliases": ("--blob-store-url",),  # the seed's spelling
        },
    )
    create_db: bool = field(
        default=True, metadata={"help": "create the CouchDB database when it is missing"}
    )
    sync_gw_public_url: str = field(
        default="",
        metadata={
            "help": "Sync Gateway's public URL of the database (port 4984), told to users "
            "with their sync credentials"
        },
    )
    workers: int = field(default=1, metadata={"help": "worker threads (0 = API only)"})
    cpus: int = field(
        default=0,
        metadata={
            "help": "CPU cores this worker shares among its running jobs (each job's threads "
            "come out of it; 0 = the cores the OS gives the process)",
            "range": (0, 4096),
        },
    )
    warm_jobs: bool = field(
        default=True,
        metadata={
            "help": "start jobs as forks of a warm process that has the engine imported "
            "(false = a fresh interpreter per job)"
        },
    )
    classifier_cache_mb: int = field(
        default=512,
        metadata={
            "help": "memory the warm inference process may keep loaded classifiers in, least "
            "recently used evicted first (0 = no warm classification: every classify request "
            "is a queued job)",
            "range": (0, 1 << 20),
        },
    )
    http_threads: int = field(
        default=16, metadata={"help": "HTTP request threads of the WSGI server (at least 16)"}
    )
    engine: str = field(
        default="torch", metadata={"help": "default training engine: torch or caffe"}
    )
    work_dir: str = field(
        default="", metadata={"help": "folder for job work directories; default <data-dir>/work"}
    )
    gpus: str = field(
        default="", metadata={"help": "comma-separated CUDA device ids this worker may use"}
    )
    lease_seconds: float = field(
        default=30.0, metadata={"help": "job lease length; a job whose lease expires is retried"}
    )
    max_attempts: int = field(
        default=3, metadata={"help": "runs of one job (lease expiries included) before it fails"}
    )
    grace_seconds: float = field(
        default=10.0, metadata={"help": "on SIGTERM, how long running jobs may take to finish"}
    )
    worker_id: str = field(
        default="", metadata={"help": "this process's worker id; default host-pid-random"}
    )
    engines: str = field(
        default="",
        metadata={
            "help": "comma-separated engines this worker offers; default: torch, plus caffe "
            "when caffe-python imports pycaffe"
        },
    )
    runner_modules: str = field(
        default="elasticthought.jobs",
        metadata={"help": "comma-separated modules that register job runners (workers import)"},
    )
    caffe_python: str = field(
        default="/usr/bin/python3",
        metadata={"help": "interpreter that can import pycaffe (engine caffe)"},
    )
    caffe_prefix: str = field(
        default="/opt/elasticthought-caffe",
        metadata={"help": "install prefix of real BVLC Caffe (scripts/install-caffe)"},
    )
    allow_private_urls: bool = field(
        default=False, metadata={"help": "allow fetching loopback and private-address URLs"}
    )
    allow_file_urls: bool = field(default=False, metadata={"help": "allow fetching file:// URLs"})
    max_upload_bytes: int = field(
        default=limits.MAX_UPLOAD_BYTES,
        metadata={"help": "largest accepted upload or download (upload routes only)"},
    )
    max_json_body_bytes: int = field(
        default=limits.MAX_JSON_BODY_BYTES,
        metadata={"help": "largest request body of a route that takes no upload (JSON)"},
    )
    max_json_depth: int = field(
        default=limits.MAX_JSON_DEPTH,
        metadata={"help": "deepest nesting of arrays/objects in a JSON body", "range": (2, 1000)},
    )
    http_connection_limit: int = field(
        default=limits.HTTP_CONNECTION_LIMIT,
        metadata={"help": "open HTTP connections; the oldest slow or idle ones are dropped first"},
    )
    http_header_timeout: float = field(
        default=limits.HTTP_HEADER_TIMEOUT,
        metadata={"help": "seconds a client may take to send a request's headers"},
    )
    http_min_body_rate: int = field(
        default=limits.HTTP_MIN_BODY_RATE,
        metadata={"help": "bytes/s a request body must average (slower clients are dropped)"},
    )
    http_max_held_bytes: int = field(
        default=0,
        metadata={
            "help": "request-body bytes the HTTP front holds at once, over all connections "
            "(0 = the smaller of 4 GiB and half the temporary folder's free disk); past it 503",
            "range": (0, 1 << 50),
        },
    )
    http_idle_timeout: int = field(
        default=limits.HTTP_IDLE_TIMEOUT,
        metadata={"help": "seconds an idle keep-alive connection stays open"},
    )
    public_url: str = field(
        default="",
        metadata={
            "help": "the service's public base URL for absolute links (default: links are "
            "relative; the Host header is never used)"
        },
    )
    job_memory_limit: int = field(
        default=0,
        metadata={
            "help": "MiB of address space one job may use (0 = machine memory / (workers + 1))"
        },
    )
    default_max_runtime: float = field(
        default=limits.DEFAULT_MAX_RUNTIME,
        metadata={"help": "seconds a job may run when it sets no max-runtime"},
    )
    max_max_runtime: float = field(
        default=limits.MAX_MAX_RUNTIME,
        metadata={"help": "the largest max-runtime (seconds) a job may set"},
    )
    max_stored_bytes_per_user: int = field(
        default=limits.MAX_STORED_BYTES_PER_USER,
        metadata={"help": "bytes one user may keep in the blob store (uploads past it: 413)"},
    )
    max_queued_jobs_per_user: int = field(
        default=limits.MAX_QUEUED_JOBS_PER_USER,
        metadata={"help": "jobs one user may have waiting in the queue (429 beyond)"},
    )
    max_running_jobs_per_user: int = field(
        default=limits.MAX_RUNNING_JOBS_PER_USER,
        metadata={
            "help": "jobs of one user running at once across all workers sharing the store "
            "(0 = no cap); the rest wait pending while other users' jobs run"
        },
    )
    max_extract_bytes: int = field(
        default=limits.MAX_EXTRACT_BYTES,
        metadata={"help": "largest total size an archive expands to"},
    )
    max_extract_files: int = field(
        default=limits.MAX_EXTRACT_FILES, metadata={"help": "most members an archive may hold"}
    )
    job_disk_limit: int = field(
        default=0,
        metadata={
            "help": "MiB a datafile job may write downloading and extracting its archive (0 = "
            "the smaller of 20 GiB and half the work folder's free disk)",
            "range": (0, 1 << 30),
        },
    )
    fetch_timeout: float = field(
        default=60.0, metadata={"help": "seconds allowed for a URL download to stall"}
    )
    open_signup: bool = field(default=True, metadata={"help": "let anyone create a user"})
    min_password_length: int = field(
        default=8,
        metadata={"help": "shortest password a user may choose (1 to 1024)", "range": (1, 1024)},
    )
    admin_user: str = field(default="", metadata={"help": "bootstrap an admin user of this name"})
    admin_password: str = field(default="", metadata={"help": "password of the bootstrap admin"})
    metrics_port: int = field(
        default=0,
        metadata={
            "help": "serve /metrics and /scaling on this port instead of the API port "
            "(0 = on the API port; a worker serves no metrics without it)"
        },
    )
    metrics_host: str = field(
        default="127.0.0.1", metadata={"help": "address the metrics port listens on"}
    )
    metrics_dir: str = field(
        default="",
        metadata={
            "help": "this service's prometheus multi-process directory (emptied at start; one "
            "per service); default a fresh temporary one"
        },
    )
    scale_min_workers: int = field(
        default=0, metadata={"help": "scaling signal: fewest workers recommended"}
    )
    scale_max_workers: int = field(
        default=10, metadata={"help": "scaling signal: most workers recommended"}
    )
    scale_slots_per_worker: int = field(
        default=0,
        metadata={
            "help": "scaling signal: job slots per worker (0 = the live workers' threads, else 1)"
        },
    )
    scale_cooldown_seconds: float = field(
        default=300.0,
        metadata={"help": "scaling signal: how long demand must stay lower before it scales down"},
    )
    log_level: str = field(default="INFO", metadata={"help": "logging level"})

    @property
    def store_url(self) -> str:
        return self.store or f"sqlite:{os.path.join(self.data_dir, 'elasticthought.db')}"

    @property
    def blobs_url(self) -> str:
        return self.blobs or f"file:{os.path.join(self.data_dir, 'blobs')}"

    @property
    def work_path(self) -> Path:
        return Path(self.work_dir or os.path.join(self.data_dir, "work")).resolve()

    @property
    def gpu_ids(self) -> list[int]:
        return [int(g) for g in self.gpus.split(",") if g.strip()]


def _in_range(kind: Any, low: int, high: int) -> Any:
    """`kind` (an argparse type) that also refuses values outside low..high."""

    def parse(text: Any) -> Any:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def _env_name(name: str) -> str:
    return "ET_" + name.upper()


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per Config field; defaults come from `ET_*` variables, then the field."""
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        env = _env_name(f.name)
        kind: Any = {"int": int, "float": float, "bool": _bool}.get(
            f.type if isinstance(f.type, str) else f.type.__name__, str
        )
        if "range" in f.metadata:
            kind = _in_range(kind, *f.metadata["range"])
        default = f.default
        if env in os.environ:
            try:
                default = kind(os.environ[env])
            except (ValueError, argparse.ArgumentTypeError) as exc:
                raise SystemExit(
                    f"elasticthought: error: environment variable {env}={os.environ[env]!r}: {exc}"
                ) from None
        extra: dict[str, Any] = {}
        if kind is _bool:
            extra["nargs"] = "?"
            extra["const"] = True
        parser.add_argument(
            flag,
            *f.metadata.get("aliases", ()),
            dest=f.name,
            type=kind,
            default=default,
            help=f"{f.metadata.get('help', '')} (env {env}; default: %(default)s)",
            **extra,
        )


def config_from_args(args: argparse.Namespace) -> Config:
    """Build a Config from parsed arguments (fields missing from `args` keep env/defaults)."""
    values: dict[str, Any] = {}
    for f in fields(Config):
        if hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return Config(**values)


def config_from_env(**overrides: Any) -> Config:
    """A Config from `ET_*` variables and keyword overrides (for child processes and tests)."""
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    config = config_from_args(parser.parse_args([]))
    for key, value in overrides.items():
        setattr(config, key, value)
    return config
