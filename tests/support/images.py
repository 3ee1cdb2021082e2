"""Image bytes made for tests."""

from __future__ import annotations

import io


def blank_png(width: int, height: int, mode: str = "L") -> bytes:
    """A black PNG: small on disk however many pixels it has."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format="PNG")
    return buf.getvalue()
