"""multipart/form-data bodies read with the `multipart` library, for the classify requests.

werkzeug's form parser compiles regular expressions for every request's boundary and costs
tens of microseconds per part; on a one-image warm classification that was the largest
cost of the server after the model itself. `multipart` (a streaming parser searching the
boundary with `bytes.find`) reads the same bodies in a fraction of that. The body has already
been bounded by the HTTP front and `BodyLimits`; here parts up to `SPOOL_BYTES` stay in
memory (at most `MEMORY_BYTES` in all) and bigger ones go to temporary files.

`read_form(part_limit)` parses the current request's body: text fields (parts without a file
name) and uploads (parts with one), each by field name in order. Close the `Form` when done
(its temporary files). A malformed body is a 400, too many parts a 413, each with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import IO

import multipart
from flask import request

from elasticthought.api.errors import ApiError, bad_request

#: Parts up to this size are kept in memory; larger ones are spooled to temporary files.
SPOOL_BYTES = 256 * 1024
#: The most bytes of memory-kept parts one request may hold.
MEMORY_BYTES = 64 * 1024 * 1024
#: The longest header line of a part (a file name of a few hundred characters fits).
HEADER_BYTES = 8 * 1024


@dataclass
class Upload:
    """One uploaded file: its name as the client gave it and its content."""

    filename: str
    stream: IO[bytes]


@dataclass
class Form:
    """A parsed multipart body: text `fields` and `files`, each by field name in order."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[Upload]] = field(default_factory=dict)
    parts: list = field(default_factory=list)

    def close(self) -> None:
        for part in self.parts:
            part.close()
        self.parts.clear()


def read_form(part_limit: int) -> Form:
    """The current request's multipart body (at most `part_limit` parts)."""
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        raise bad_request("multipart/form-data without a boundary")
    parser = multipart.MultipartParser(
        request.stream,
        boundary,
        request.content_length if request.content_length is not None else -1,
        charset="utf-8",
        headersize_limit=HEADER_BYTES,
        part_limit=part_limit,
        spool_limit=SPOOL_BYTES,
        memory_limit=MEMORY_BYTES,
    )
    form = Form()
    try:
        for part in parser:
            form.parts.append(part)
            name = part.name or ""
            if part.filename is None:
                form.fields.setdefault(name, []).append(part.value)
            else:
                form.files.setdefault(name, []).append(Upload(part.filename, part.file))
    except multipart.ParserLimitReached as exc:
        form.close()
        raise ApiError(
            413,
            f"multipart body refused ({exc}): at most {part_limit} parts, header lines of at "
            f"most {HEADER_BYTES} bytes, {MEMORY_BYTES} bytes of small parts",
        ) from None
    except (multipart.MultipartError, UnicodeDecodeError) as exc:
        form.close()
        raise bad_request(f"malformed multipart body: {exc}") from None
    except BaseException:  # e.g. the body over the upload limit (413 from the stream)
        form.close()
        raise
    return form
