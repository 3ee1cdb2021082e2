"""HDF5Data and HDF5Output.

HDF5Data: `hdf5_data_param.source` is a text file listing HDF5 files (whitespace-separated,
relative to the current directory); each top reads the dataset of its own name (float or
integer, any rank >= 1, read as float32; every dataset of a file has the same first dimension).
Batches of `batch_size` rows follow one another, moving to the next file at the end of one and
wrapping around after the last. `shuffle` permutes the file order at every pass over the files
and the rows of a file every time it is (re)entered (torch's seeded RNG; Caffe uses its own).
No transform_param. HDF5Output: writes its two bottoms as datasets "data" and "label" (Caffe's
legacy 4-axis shapes) into `hdf5_output_param.file_name`, created when the net is built; as in
Caffe a second forward cannot add them again and fails.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from elasticthought.engine.torch.layer import Layer, register


@register
class HDF5Data(Layer):
    type_name = "HDF5Data"
    is_data = True
    has_backward = False
    num_bottoms = (0, 0)
    num_tops = (1, None)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        if self.param.HasField("transform_param"):
            raise self.error("HDF5Data does not transform data.")
        p = self.param.hdf5_data_param
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error("batch_size must be positive")
        self.shuffle = bool(p.shuffle)
        try:
            with open(p.source, encoding="utf-8") as f:
                self.files = f.read().split()
        except OSError as exc:
            raise self.error(f"Failed to open source file: {p.source} ({exc.strerror})") from None
        if not self.files:
            raise self.error(f"Must have at least 1 HDF5 filename listed in {p.source}")
        self.file_order = self._permutation(len(self.files))
        self.current_file = 0
        self._load(self.files[self.file_order[0]])
        self.row = 0

    def _permutation(self, n: int) -> list[int]:
        if self.shuffle:
            return torch.randperm(n).tolist()
        return list(range(n))

    def _load(self, path: str) -> None:
        import h5py

        if not os.path.exists(path):
            raise self.error(f"Failed opening HDF5 file: {path}")
        arrays = []
        with h5py.File(path, "r") as f:
            for name in self.param.top:
                if name not in f or not isinstance(f[name], h5py.Dataset):
                    raise self.error(f"{path}: no dataset {name!r}")
                ds = f[name]
                if ds.dtype.kind not in "fiu" or ds.ndim < 1:
                    raise self.error(f"{path}: dataset {name!r} must be numeric with >= 1 axis")
                arrays.append(np.asarray(ds, dtype=np.float32))
        num = arrays[0].shape[0]
        if any(a.shape[0] != num for a in arrays[1:]):
            raise self.error(f"{path}: the datasets differ in their first dimension")
        if num == 0:
            raise self.error(f"{path}: no rows")
        shapes = [tuple(a.shape[1:]) for a in arrays]
        if getattr(self, "item_shapes", shapes) != shapes:
            raise self.error(
                f"{path}: item shapes {shapes} differ from the first file's {self.item_shapes}"
            )
        self.item_shapes = shapes
        self.data = [torch.from_numpy(a) for a in arrays]
        self.rows = self._permutation(num)

    def _next(self) -> None:
        self.row += 1
        if self.row == self.data[0].shape[0]:
            if len(self.files) > 1:
                self.current_file += 1
                if self.current_file == len(self.files):
                    self.current_file = 0
                    if self.shuffle:
                        self.file_order = self._permutation(len(self.files))
                self._load(self.files[self.file_order[self.current_file]])
            self.row = 0
            if self.shuffle:
                self.rows = self._permutation(self.data[0].shape[0])

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        picks: list[list[torch.Tensor]] = [[] for _ in self.data]
        for _ in range(self.batch_size):
            index = self.rows[self.row]
            for k, d in enumerate(self.data):
                picks[k].append(d[index])
            self._next()
        return [torch.stack(p).to(self.device) for p in picks]


@register
class HDF5Output(Layer):
    type_name = "HDF5Output"
    has_backward = False
    num_bottoms = (2, 2)
    num_tops = (0, 0)

    def setup(self, bottoms: list[torch.Tensor]) -> None:
        import h5py

        self.file_name = self.param.hdf5_output_param.file_name
        try:
            h5py.File(self.file_name, "w").close()
        except OSError as exc:
            raise self.error(f"Failed to open HDF5 file {self.file_name}: {exc}") from None
        self.written = False

    def forward(self, bottoms: list[torch.Tensor]) -> list[torch.Tensor]:
        import h5py

        data, label = bottoms
        if data.shape[0] != label.shape[0]:
            raise self.error("data blob and label blob must have the same batch size")
        if self.in_setup:
            return []
        if self.written:
            raise self.error(
                f"{self.file_name}: datasets 'data' and 'label' already written "
                "(Caffe's HDF5Output saves one batch)"
            )
        with h5py.File(self.file_name, "a") as f:
            for name, t in (("data", data), ("label", label)):
                f.create_dataset(name, data=t.detach().cpu().numpy().reshape(_legacy4(t)))
        self.written = True
        return []


def _legacy4(t: torch.Tensor) -> tuple[int, int, int, int]:
    """Caffe's num/channels/height/width view of a blob (missing axes are 1)."""
    dims = [int(d) for d in t.shape]
    if len(dims) > 4:
        raise ValueError("HDF5Output writes blobs of at most 4 axes")
    return tuple(dims + [1] * (4 - len(dims)))  # type: ignore[return-value]
