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


#: The most pixels (width x height) an image may have: a larger one is refused before it is
#: decoded. Decoding, converting and resizing take up to about 11 bytes a pixel, so one image
#: costs at most about 550 MB (a 48-megapixel photo still fits); without it a 450 kB PNG of
#: 12500 x 12500 black pixels took 7.4 GB to classify. Pillow's own bomb check (89 M) is above.
MAX_IMAGE_PIXELS = 50_000_000
#: Pixels converted to gray at once (bounds the integer temporaries of `_rgb_to_gray`).
_GRAY_CHUNK_PIXELS = 1 << 20

_GRAY_MODES = ("1", "L", "I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def _gray8(img) -> np.ndarray:
    """8-bit HxW array of a single-channel Pillow image (16-bit keeps its high byte, as
    libpng's strip-16)."""
    if img.mode in ("1", "L"):
        return np.asarray(img.convert("L"), dtype=np.uint8)
    arr = np.asarray(img)
    if img.mode == "F":
        return np.clip(arr, 0, 255).astype(np.uint8)
    arr = arr.astype(np.int64)
    if img.mode != "I" or arr.max(initial=0) > 255:
        arr = arr >> 8
    return np.clip(arr, 0, 255).astype(np.uint8)


def _rgb_to_gray(rgb: np.ndarray, image_format: str | None) -> np.ndarray:
    """Colour -> gray exactly as OpenCV's decoders do it for IMREAD_GRAYSCALE: libpng's
    fixed-point rgb_to_gray (0.299/0.587) for PNG, OpenCV's own 14-bit weights otherwise."""
    weights, bias, shift = (
        ((9797, 19234, 3737), 0, 15) if image_format == "PNG" else ((4899, 9617, 1868), 8192, 14)
    )
    out = np.empty(rgb.shape[:2], np.uint8)
    rows = max(1, _GRAY_CHUNK_PIXELS // max(1, rgb.shape[1]))
    for top in range(0, rgb.shape[0], rows):  # int32 holds 32768 * 255: no overflow
        part = rgb[top : top + rows].astype(np.int32)
        gray = weights[0] * part[..., 0] + weights[1] * part[..., 1] + weights[2] * part[..., 2]
        out[top : top + rows] = (gray + bias) >> shift
    return out


def _rgb(img):  # noqa: ANN001, ANN202
    """The image in RGB mode (itself when it is: no copy of a large image)."""
    return img if img.mode == "RGB" else img.convert("RGB")


def _decode_hwc(img, color: bool | None) -> np.ndarray:
    """Pillow image -> uint8 H x W x C in OpenCV channel order (BGR / BGRA / gray)."""
    mode, fmt = img.mode, img.format
    if color is False:
        if mode in _GRAY_MODES:
            return _gray8(img)[..., None]
        if mode in ("LA", "La"):
            return _gray8(img.getchannel(0))[..., None]
        return _rgb_to_gray(np.asarray(_rgb(img)), fmt)[..., None]
    if color is True:
        if mode in _GRAY_MODES:
            return np.repeat(_gray8(img)[..., None], 3, axis=2)
        return np.asarray(_rgb(img), dtype=np.uint8)[..., ::-1]
    # Native (Caffe's DecodeDatumToCVMatNative = IMREAD_UNCHANGED): keep gray, colour, alpha.
    if mode in _GRAY_MODES:
        return _gray8(img)[..., None]
    if mode in ("LA", "La"):  # OpenCV expands gray + alpha to BGRA
        gray, alpha = (np.asarray(c, dtype=np.uint8) for c in img.convert("LA").split())
        return np.dstack([gray, gray, gray, alpha])
    has_alpha = mode in ("RGBA", "RGBa", "PA") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
        return rgba[..., [2, 1, 0, 3]]
    return np.asarray(_rgb(img), dtype=np.uint8)[..., ::-1]


def too_many_pixels(width: int, height: int) -> str | None:
    """Why an image of `width` x `height` may not be decoded ("W x H = N pixels, over the
    limit of MAX_IMAGE_PIXELS"), or None when it may."""
    pixels = width * height
    if pixels <= MAX_IMAGE_PIXELS:
        return None
    return f"{width} x {height} = {pixels} pixels, over the limit of {MAX_IMAGE_PIXELS}"


def decode_image(data: bytes, color: bool | None = None) -> np.ndarray:
    """Decode PNG/JPEG/BMP/... bytes into a uint8 C x H x W array in OpenCV's channel order.

    `color=None` decodes natively as Caffe's DecodeDatumToCVMatNative (gray -> 1 channel,
    colour -> 3 BGR, with alpha -> 4 BGRA); True gives 3 BGR channels and False 1 gray channel
    (force_color / force_gray, convert_imageset --gray), with OpenCV's conversions (checked
    bit-exact against OpenCV 4.10 for PNG, JPEG and BMP). Unlike Caffe, 16-bit images are
    accepted (their high byte is kept) instead of aborting.
    """
    from PIL import Image, UnidentifiedImageError
    from PIL.Image import DecompressionBombError

    try:
        with Image.open(io.BytesIO(data)) as img:
            too_many = too_many_pixels(*img.size)
            if too_many:
                raise FormatError(f"image is {too_many}")
            if color is False and img.format == "JPEG" and img.mode not in _GRAY_MODES:
                img.draft("L", img.size)  # libjpeg hands out the luma channel, as for OpenCV
            img.load()
            hwc = _decode_hwc(img, color)
    except (
        UnidentifiedImageError,
        OSError,
        SyntaxError,
        ValueError,
        DecompressionBombError,
    ) as exc:
        raise FormatError(f"cannot decode image ({len(data)} bytes): {exc}") from None
    return np.ascontiguousarray(hwc.transpose(2, 0, 1))


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
    options = {"quality": 95} if pil_fmt == "JPEG" else {}  # OpenCV's default quality
    img.save(buf, format=pil_fmt, **options)
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
