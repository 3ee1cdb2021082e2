"""Caffe's HDF5 files (h5py): weights (`.caffemodel.h5`) and solver states (`.solverstate.h5`)
as `snapshot_format: HDF5` writes them, readable by real Caffe and back.

- weights: group `data` with one group per layer (every layer, in net order, even those without
  parameters) holding datasets "0", "1", ... -- the layer's parameter blobs in Caffe's shapes
  (only blobs a layer owns; a shared blob is stored by its owner); with diffs, a `diff` group of
  the same layout holding every blob's diff.
- solver state: int datasets `iter` and `current_step` (shape (1,)), string `learned_net` (the
  weights file, relative to the current directory) and group `history` with datasets "0", ...
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

#: file name endings Caffe treats as HDF5
HDF5_SUFFIX = ".h5"


def is_hdf5(path: str | os.PathLike) -> bool:
    """Caffe's rule: a weights or state file is HDF5 when its name ends in `.h5`."""
    return os.fspath(path).endswith(HDF5_SUFFIX)


def write_weights(net: Any, path: str | os.PathLike, write_diff: bool = False) -> None:
    """Net::ToHDF5: the net's parameters (see the module docstring)."""
    import h5py

    owned: set[int] = set()
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        diff = f.create_group("diff") if write_diff else None
        for name, layer in zip(net.layer_names, net.layers, strict=True):
            group = data.create_group(name)
            diff_group = diff.create_group(name) if diff is not None else None
            for k, t in enumerate(layer.blobs):
                if id(t) not in owned:
                    owned.add(id(t))
                    group.create_dataset(str(k), data=t.detach().cpu().numpy())
                if diff_group is not None:
                    g = t.grad
                    value = (
                        np.zeros(tuple(t.shape), np.float32)
                        if g is None
                        else g.detach().cpu().numpy()
                    )
                    diff_group.create_dataset(str(k), data=value)


def read_weights(path: str | os.PathLike) -> dict[str, list[np.ndarray | None]]:
    """Layer name -> its parameter arrays by index (None where a shared blob is not stored),
    in file order."""
    import h5py

    layers: dict[str, list[np.ndarray | None]] = {}
    with h5py.File(path, "r") as f:
        if "data" not in f:
            raise ValueError(f"{os.fspath(path)}: no 'data' group (not Caffe HDF5 weights)")
        for name, group in f["data"].items():
            count = max((int(k) + 1 for k in group), default=0)
            arrays: list[np.ndarray | None] = [None] * count
            for key, ds in group.items():
                arrays[int(key)] = np.asarray(ds, dtype=np.float32)
            layers[name] = arrays
    return layers


def write_state(
    path: str | os.PathLike,
    iteration: int,
    learned_net: str,
    current_step: int,
    history: list[np.ndarray],
) -> None:
    """SGDSolver::SnapshotSolverStateToHDF5."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("iter", data=np.array([iteration], np.int32))
        # NUL-terminated, as H5LTmake_dataset_string stores it (Caffe reads up to the NUL)
        f.create_dataset("learned_net", data=np.bytes_(learned_net.encode() + b"\0"))
        f.create_dataset("current_step", data=np.array([current_step], np.int32))
        group = f.create_group("history")
        for i, h in enumerate(history):
            group.create_dataset(str(i), data=np.asarray(h, np.float32))


def read_state(path: str | os.PathLike) -> tuple[int, str, int, list[np.ndarray]]:
    """(iter, learned_net or "", current_step, history arrays) of a `.solverstate.h5`."""
    import h5py

    with h5py.File(path, "r") as f:
        iteration = int(np.asarray(f["iter"]).reshape(-1)[0])
        learned = ""
        if "learned_net" in f:
            raw = f["learned_net"][()]
            learned = raw.rstrip(b"\0").decode() if isinstance(raw, bytes) else str(raw)
        step = int(np.asarray(f["current_step"]).reshape(-1)[0])
        group = f["history"]
        history = [np.asarray(group[str(i)], np.float32) for i in range(len(group))]
    return iteration, learned, step, history
