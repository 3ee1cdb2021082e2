"""Caffe `Datum` records <-> numpy arrays (C x H x W, BGR for colour as OpenCV stores it)."""

from __future__ import annotations

import io

import numpy as np

from elasticthought.engine.errors import FormatError
from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.wire import parse_binary, unknown_field_paths


def parse_datum(value: bytes, key: str | bytes | None = None) -> caffe_pb2.Datum:
    """Parse a database value as a Datum; anything else raises `FormatError`."""
    where = f" (key {key!r})" if key is not None else ""
    try:
        datum = parse_binary(value, caffe_pb2.Datum, "Datum")
    except FormatError as exc:
        raise FormatError(f"value is not a Caffe Datum{where}: {exc.reason}") from None
    unknown = unknown_field_paths(datum)
    if unknown:
        raise FormatError(f"value is not a Caffe Datum{where}: unknown fields {unknown}")
    if not datum.HasField("data") and not len(datum.float_data):
        raise FormatError(f"value is not a Caffe Datum{where}: it holds no data")
    return datum


def _to_pil_mode(img, color: bool | None):
    """Convert a Pillow image as OpenCV's imread would: 8-bit gray or 8-bit colour."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.uint32)
        if mode != "I" or arr.max(initial=0) > 255:
            arr = arr >> 8
        from PIL import Image

        img = Image.fromarray(arr.astype(np.uint8), "L")
    elif mode == "F":
        from PIL import Image

        arr = np.clip(np.asarray(img), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    native_gray = img.mode in ("1", "L", "LA")
    if color is None:
        color = not native_gray
    if color:
        return img.convert("RGB")
    return img.convert("L")


def decode_image(data: bytes, color: bool | None = None) -> np.ndarray:
    """Decode PNG/JPEG/... bytes into a uint8 C x H x W array (BGR channel order for colour).

    `color=None` keeps the file's own kind (gray -> 1 channel, else 3); True forces 3 channels,
    False forces 1 (as Caffe's DecodeDatumToCVMat / force_color / force_gray).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            img = _to_pil_mode(img, color)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FormatError(f"cannot decode image ({len(data)} bytes): {exc}") from None
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        return arr[None].copy()
    return np.ascontiguousarray(arr[:, :, ::-1].transpose(2, 0, 1))  # RGB HWC -> BGR CHW


def encode_image(arr_chw: np.ndarray, fmt: str = "png") -> bytes:
    """Encode a uint8 C x H x W array (BGR for 3 channels) as PNG or JPEG bytes."""
    from PIL import Image

    arr = np.asarray(arr_chw)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise FormatError(f"can only encode uint8 1xHxW or 3xHxW images, not {arr.shape}")
    if arr.shape[0] == 1:
        img = Image.fromarray(arr[0], "L")
    else:
        img = Image.fromarray(np.ascontiguousarray(arr[::-1].transpose(1, 2, 0)), "RGB")
    fmt = fmt.lower()
    pil_fmt = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP"}.get(fmt)
    if pil_fmt is None:
        raise FormatError(f"unsupported encode type {fmt!r} (use png or jpg)")
    buf = io.BytesIO()
    img.save(buf, format=pil_fmt)
    return buf.getvalue()


def datum_to_array(
    datum: caffe_pb2.Datum | bytes, color: bool | None = None
) -> tuple[np.ndarray, int]:
    """(C x H x W array, label) of a Datum (or its serialized bytes).

    Raw records give uint8 arrays, `float_data` records float32 arrays, encoded records are
    decoded with Pillow to uint8 (colour in BGR order); `color` applies to encoded records only.
    """
    if isinstance(datum, bytes | bytearray | memoryview):
        datum = parse_datum(bytes(datum))
    label = int(datum.label)
    if datum.encoded:
        return decode_image(datum.data, color), label
    shape = (int(datum.channels), int(datum.height), int(datum.width))
    count = shape[0] * shape[1] * shape[2]
    if datum.HasField("data") and len(datum.data):
        if len(datum.data) != count:
            raise FormatError(
                f"Datum holds {len(datum.data)} bytes, but its shape {shape} needs {count}"
            )
        return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape).copy(), label
    if len(datum.float_data) != count:
        raise FormatError(
            f"Datum holds {len(datum.float_data)} floats, but its shape {shape} needs {count}"
        )
    return np.asarray(datum.float_data, dtype=np.float32).reshape(shape), label


def array_to_datum(
    arr_chw: np.ndarray | None, label: int, encoded: bytes | None = None
) -> caffe_pb2.Datum:
    """A Datum as Caffe's convert_imageset writes it.

    `encoded` bytes -> an encoded Datum (data = the bytes, channels/height/width unset);
    otherwise a uint8 array -> raw bytes, a float array -> float_data, with the C x H x W shape.
    """
    datum = caffe_pb2.Datum()
    if encoded is not None:
        datum.data = bytes(encoded)
        datum.label = int(label)
        datum.encoded = True
        return datum
    if arr_chw is None:
        raise FormatError("array_to_datum needs an array or encoded bytes")
    arr = np.asarray(arr_chw)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise FormatError(f"a Datum holds a C x H x W array, not shape {arr.shape}")
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = np.ascontiguousarray(arr).tobytes()
    elif np.issubdtype(arr.dtype, np.floating):
        datum.float_data.extend(arr.astype(np.float32).ravel().tolist())
    else:
        raise FormatError(f"Datum arrays are uint8 or float, not {arr.dtype}")
    datum.encoded = False
    datum.label = int(label)
    return datum
