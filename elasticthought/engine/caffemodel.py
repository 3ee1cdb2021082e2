"""Caffe binary files: `.caffemodel` (NetParameter), `.solverstate`, `.binaryproto` blobs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from elasticthought.engine.errors import FormatError
from elasticthought.engine.proto import caffe_pb2
from elasticthought.engine.wire import parse_binary

PathOrBytes = str | os.PathLike | bytes | bytearray | memoryview
_LEGACY = ("num", "channels", "height", "width")


def _load(path_or_bytes: PathOrBytes) -> tuple[bytes, str | None]:
    if isinstance(path_or_bytes, bytes | bytearray | memoryview):
        return bytes(path_or_bytes), None
    try:
        return Path(path_or_bytes).read_bytes(), os.fspath(path_or_bytes)
    except OSError as exc:
        raise FormatError(f"cannot read {os.fspath(path_or_bytes)}: {exc.strerror}") from None


def _parse(path_or_bytes: PathOrBytes, cls, what: str):
    data, source = _load(path_or_bytes)
    try:
        return parse_binary(data, cls, what)
    except FormatError as exc:
        raise FormatError(exc.reason, source=source) from None


def _write(data: bytes, path: str | os.PathLike) -> None:
    """Write atomically (temp file + rename) so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Nets


def read_caffemodel(path_or_bytes: PathOrBytes, upgrade: bool = True) -> caffe_pb2.NetParameter:
    """Read a binary NetParameter; upgraded to V2 as Caffe does on load unless `upgrade=False`."""
    net = _parse(path_or_bytes, caffe_pb2.NetParameter, "caffemodel (NetParameter)")
    if upgrade:
        from elasticthought.engine.upgrade import upgrade_net

        net = upgrade_net(net)
    return net


def write_caffemodel(net: caffe_pb2.NetParameter, path: str | os.PathLike) -> None:
    """Write `net` as a binary `.caffemodel`."""
    _write(net.SerializeToString(), path)


def caffemodel_params(net: caffe_pb2.NetParameter) -> dict[str, list[np.ndarray]]:
    """Layer name -> its parameter blobs as float32 arrays (layers without blobs omitted)."""
    layers = list(net.layer) or list(net.layers)
    return {layer.name: [blob_to_array(b) for b in layer.blobs] for layer in layers if layer.blobs}


# --------------------------------------------------------------------------------------------
# Blobs


def blob_shape(blob: caffe_pb2.BlobProto) -> tuple[int, ...]:
    """Shape as Caffe's Blob::FromProto sees it: `shape` if present, else the legacy 4-D dims
    when any is set, else a 0-axis (scalar) blob."""
    if blob.HasField("shape"):
        return tuple(int(d) for d in blob.shape.dim)
    if any(blob.HasField(f) for f in _LEGACY):
        return tuple(int(getattr(blob, f)) for f in _LEGACY)
    return ()


def blob_to_array(blob: caffe_pb2.BlobProto, diff: bool = False) -> np.ndarray:
    """Blob values (or `diff=True`: gradients) as a float32 array of the blob's shape.
    `double_data`/`double_diff` are used when present (cast to float32)."""
    shape = blob_shape(blob)
    if diff:
        values = blob.double_diff if len(blob.double_diff) else blob.diff
    else:
        values = blob.double_data if len(blob.double_data) else blob.data
    arr = np.asarray(values, dtype=np.float32)
    count = int(np.prod(shape, dtype=np.int64))
    if arr.size != count:
        if diff and arr.size == 0:
            return np.zeros(shape, dtype=np.float32)
        kind = "diff" if diff else "data"
        raise FormatError(f"blob of shape {shape} holds {arr.size} {kind} values, not {count}")
    return arr.reshape(shape)


def array_to_blob(
    arr: np.ndarray, legacy: bool = False, diff: np.ndarray | None = None
) -> caffe_pb2.BlobProto:
    """A float32 BlobProto with `shape` (or, `legacy=True`, num/channels/height/width with the
    shape right-aligned, as old Caffe and compute_image_mean write them)."""
    arr = np.asarray(arr, dtype=np.float32)
    blob = caffe_pb2.BlobProto()
    if legacy:
        if arr.ndim > 4:
            raise FormatError(f"legacy blob dims hold at most 4 axes, not {arr.ndim}")
        dims = (1,) * (4 - arr.ndim) + arr.shape
        for field, value in zip(_LEGACY, dims, strict=True):
            setattr(blob, field, int(value))
    elif arr.ndim:
        blob.shape.dim.extend(int(d) for d in arr.shape)
    # Append the values as packed wire data: far faster than extending the repeated field.
    wire = _packed_floats(5, arr)
    if diff is not None:
        wire += _packed_floats(6, np.asarray(diff, dtype=np.float32))
    blob.MergeFromString(wire)
    return blob


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _packed_floats(field_number: int, arr: np.ndarray) -> bytes:
    """Wire bytes of a packed repeated float field holding `arr` (little-endian float32)."""
    payload = np.ascontiguousarray(arr, dtype="<f4").tobytes()
    if not payload:
        return b""
    return _varint(field_number << 3 | 2) + _varint(len(payload)) + payload


def blob_shape_equals(blob: caffe_pb2.BlobProto, shape: tuple[int, ...]) -> bool:
    """Caffe's Blob::ShapeEquals: legacy 4-D dims match `shape` aligned from the end."""
    if blob.HasField("shape") or not any(blob.HasField(f) for f in _LEGACY):
        return blob_shape(blob) == tuple(shape)
    if len(shape) > 4:
        return False
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    return blob_shape(blob) == padded


# --------------------------------------------------------------------------------------------
# Solver state and mean files


def read_solverstate(path_or_bytes: PathOrBytes) -> caffe_pb2.SolverState:
    """Read a binary `.solverstate`."""
    return _parse(path_or_bytes, caffe_pb2.SolverState, "solverstate (SolverState)")


def write_solverstate(state: caffe_pb2.SolverState, path: str | os.PathLike) -> None:
    """Write a binary `.solverstate`."""
    _write(state.SerializeToString(), path)


def read_blobproto(path_or_bytes: PathOrBytes) -> caffe_pb2.BlobProto:
    """Read a binary BlobProto (`.binaryproto`)."""
    return _parse(path_or_bytes, caffe_pb2.BlobProto, "binaryproto (BlobProto)")


def read_mean_binaryproto(path_or_bytes: PathOrBytes) -> np.ndarray:
    """Mean image as a float32 (C, H, W) array (a leading num of 1 is dropped)."""
    blob = read_blobproto(path_or_bytes)
    arr = blob_to_array(blob)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3:
        raise FormatError(f"mean file holds a blob of shape {arr.shape}, not 1 x C x H x W")
    return arr


def write_mean_binaryproto(arr: np.ndarray, path: str | os.PathLike) -> None:
    """Write a (C, H, W) mean as compute_image_mean does: legacy dims 1 x C x H x W."""
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim != 3:
        raise FormatError(f"mean image must be C x H x W, not {arr.shape}")
    _write(array_to_blob(arr[None], legacy=True).SerializeToString(), path)
