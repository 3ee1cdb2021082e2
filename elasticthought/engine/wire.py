"""Binary protobuf parsing with `FormatError`s, and an unknown-field finder."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf import message as _message
from google.protobuf import unknown_fields as _unknown

from elasticthought.engine.errors import FormatError

M = TypeVar("M", bound=_message.Message)


def parse_binary(data: bytes, cls: type[M], what: str | None = None) -> M:
    """Parse `data` as a `cls` message; corrupt or truncated input raises `FormatError`."""
    msg = cls()
    try:
        msg.ParseFromString(bytes(data))
    except _message.DecodeError as exc:
        name = what or cls.DESCRIPTOR.name
        raise FormatError(f"corrupt or truncated {name} ({len(data)} bytes): {exc}") from None
    return msg


def unknown_field_paths(msg: _message.Message, prefix: str = "") -> list[str]:
    """Paths (`layer[3].blobs[0]#12`) of every unknown field in `msg` and its sub-messages."""
    found = [f"{prefix}#{field.field_number}" for field in _unknown.UnknownFieldSet(msg)]
    for desc, value in msg.ListFields():
        if desc.message_type is None:
            continue
        path = f"{prefix}.{desc.name}" if prefix else desc.name
        if desc.is_repeated:
            for i, item in enumerate(value):
                found.extend(unknown_field_paths(item, f"{path}[{i}]"))
        else:
            found.extend(unknown_field_paths(value, path))
    return found
