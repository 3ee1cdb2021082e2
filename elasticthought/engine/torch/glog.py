"""Caffe's glog line format for the engine's Python logging.

A line reads `I20261128 12:11:38.340610 18456 solver.py:239] message`: severity letter, date,
time with microseconds, process id, source file:line, message. Existing Caffe log tools (e.g.
tools/extra/parse_log.py) and `elasticthought.engine.logparse` read these lines. All engine
messages go to the `elasticthought.engine` logger.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import IO

LOGGER = "elasticthought.engine"
_LEVELS = {"DEBUG": "I", "INFO": "I", "WARNING": "W", "ERROR": "E", "CRITICAL": "F"}


class GlogFormatter(logging.Formatter):
    """Formats records as glog lines (only the first line of a message is prefixed)."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created)
        prefix = (
            f"{_LEVELS.get(record.levelname, 'I')}{when:%Y%m%d %H:%M:%S}.{when.microsecond:06d} "
            f"{record.process} {record.filename}:{record.lineno}] "
        )
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return prefix + text


def engine_logger() -> logging.Logger:
    return logging.getLogger(LOGGER)


def attach(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send engine messages to `stream` (default stderr) as glog lines; returns the handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(GlogFormatter())
    logger = engine_logger()
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    return handler


@contextlib.contextmanager
def capture(path: str, mode: str = "a") -> Iterator[logging.Handler]:
    """Append engine messages to the file `path` as glog lines while the block runs."""
    with open(path, mode, encoding="utf-8", buffering=1) as f:
        handler = attach(f)
        try:
            yield handler
        finally:
            engine_logger().removeHandler(handler)
            handler.flush()
