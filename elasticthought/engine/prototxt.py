"""Parse and print Caffe prototxt (text-format NetParameter / SolverParameter).

Nets are always returned in the current (V2) format: V0/V1 nets and legacy inputs are upgraded
as Caffe does when it reads a file. Solvers get the legacy `solver_type` enum turned into `type`.
Every problem is a `FormatError` naming line and column.
"""

from __future__ import annotations

import math
import os
import re

from google.protobuf import message as _message
from google.protobuf import text_format

from elasticthought.engine.errors import FormatError
from elasticthought.engine.proto import caffe_pb2

_WHERE = re.compile(r"^\s*(\d+):(\d+)\s*:\s*")


def _decode(text: str | bytes, source: str | None) -> str:
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormatError(f"not UTF-8 text (byte {exc.start})", source=source) from None
    return text


def parse_text(text: str | bytes, message: _message.Message, source: str | None = None):
    """Parse text-format `text` into `message` (cleared first); returns `message`.

    Unknown fields, bad values and syntax errors raise `FormatError` with line/column.
    """
    text = _decode(text, source)
    message.Clear()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        line, column = exc.GetLine(), exc.GetColumn()
        reason = str(exc)
        match = _WHERE.match(reason)
        if match:
            reason = reason[match.end() :]
            if line is None:
                line, column = int(match.group(1)), int(match.group(2))
        raise FormatError(reason, line=line, column=column, source=source) from None
    except RecursionError:
        raise FormatError("text nests too deeply", source=source) from None
    except (ValueError, TypeError) as exc:  # defensive: odd values the tokenizer lets through
        raise FormatError(str(exc), source=source) from None
    return message


def _locate(text: str, needle: str) -> tuple[int | None, int | None]:
    """1-based (line, column) of the first `needle` in `text`, or (None, None)."""
    at = text.find(needle)
    if at < 0:
        return None, None
    line = text.count("\n", 0, at) + 1
    return line, at - (text.rfind("\n", 0, at) + 1) + 1


def non_finite_number(message: _message.Message, path: str = "") -> tuple[str, str, float] | None:
    """The first number field of `message` (nested ones included) that is NaN or infinite, as
    (dotted path, field name, value), or None. Text format accepts `nan`, `inf` and
    overflowing literals such as `1e400`; Caffe would run with them."""
    from google.protobuf.descriptor import FieldDescriptor

    for field, value in message.ListFields():
        values = list(value) if field.is_repeated else [value]
        for index, item in enumerate(values):
            where = f"{path}{field.name}" + (f"[{index}]" if len(values) > 1 else "")
            if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
                if not math.isfinite(item):
                    return where, field.name, item
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                found = non_finite_number(item, where + ".")
                if found is not None:
                    return found
    return None


def locate_number(text: str, field: str) -> tuple[int | None, int | None]:
    """1-based (line, column) of the value of the first `field:` whose value is not finite
    (`nan`, `inf`, or a literal past the float range), else of the first `field`."""
    pattern = re.compile(rf"\b{re.escape(field)}\s*:\s*([-+]?[0-9A-Za-z_.]+)")
    for match in pattern.finditer(text):
        try:
            finite = math.isfinite(float(match.group(1).rstrip("fF")))
        except ValueError:
            finite = True
        if not finite:
            at = match.start(1)
            return text.count("\n", 0, at) + 1, at - (text.rfind("\n", 0, at) + 1) + 1
    return _locate(text, field)


def require_finite(message: _message.Message, text: str) -> None:
    """`FormatError` (line and column in `text`, the prototxt `message` was parsed from) when
    a number in it is NaN or infinite: the service refuses what would only make a job fail."""
    found = non_finite_number(message)
    if found is None:
        return
    path, name, value = found
    line, column = locate_number(text, name)
    raise FormatError(f"{path} is {value}; numbers must be finite", line=line, column=column)


def parse_net(text: str | bytes, source: str | None = None) -> caffe_pb2.NetParameter:
    """Parse a net prototxt and return it upgraded to the V2 (`layer { type: "..." }`) format."""
    from elasticthought.engine.upgrade import upgrade_net

    text = _decode(text, source)
    net = parse_text(text, caffe_pb2.NetParameter(), source)
    try:
        return upgrade_net(net)
    except FormatError as exc:
        line, column = exc.line, exc.column
        name = getattr(exc, "layer_name", None)
        if line is None and name:
            line, column = _locate(text, f'name: "{name}"')
        raise FormatError(exc.reason, line, column, source or exc.source) from None


def parse_solver(text: str | bytes, source: str | None = None) -> caffe_pb2.SolverParameter:
    """Parse a solver prototxt; `solver_type: ENUM` becomes `type: "Name"`."""
    from elasticthought.engine.upgrade import upgrade_solver

    solver = parse_text(text, caffe_pb2.SolverParameter(), source)
    try:
        return upgrade_solver(solver)
    except FormatError as exc:
        if source and not exc.source:
            raise FormatError(exc.reason, exc.line, exc.column, source) from None
        raise


def _read(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise FormatError(f"cannot read {os.fspath(path)}: {exc.strerror}") from None


def read_net(path: str | os.PathLike) -> caffe_pb2.NetParameter:
    """Read and upgrade a net prototxt file."""
    return parse_net(_read(path), source=os.fspath(path))


def read_solver(path: str | os.PathLike) -> caffe_pb2.SolverParameter:
    """Read and upgrade a solver prototxt file."""
    return parse_solver(_read(path), source=os.fspath(path))


_WHOLE_FLOAT = re.compile(r"^(\s*\w+: -?\d+)\.0$", re.MULTILINE)


def to_text(msg: _message.Message) -> str:
    """Text format as Caffe writes it (two-space indent, fields in declaration order).

    Whole-valued floats print without `.0` (`lr_mult: 1`), as Caffe's C++ printer does, so
    upgraded files match Caffe's upgrade tools byte for byte.
    """
    return _WHOLE_FLOAT.sub(r"\1", text_format.MessageToString(msg))


def write_text(msg: _message.Message, path: str | os.PathLike) -> None:
    """Write `msg` as a text prototxt file."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(to_text(msg))
