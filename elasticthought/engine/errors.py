"""The one error type for bad Caffe input (text, binaries, databases)."""

from __future__ import annotations


class FormatError(ValueError):
    """Bad Caffe input: malformed or unknown text, truncated binaries, non-Datum records.

    `line` and `column` (1-based) are set for prototxt errors when known; `str()` always
    carries the reason (prefixed by `line:column` for text).
    """

    def __init__(
        self,
        reason: str,
        line: int | None = None,
        column: int | None = None,
        source: str | None = None,
    ) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        self.source = source
        where = ""
        if line is not None:
            where = f"{line}:{column}: " if column is not None else f"{line}: "
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{where}{reason}")
