"""The `Data` layer: Datum records from an LMDB or LevelDB in key order, wrapping at the end.

As in Caffe, records are read sequentially (the first batch starts at the first key, batch b at
record `b * batch_size mod count`), transformed by transform_param, and prepared by a background
prefetch thread `data_param.prefetch` batches ahead. Encoded Datums (convert_imageset
--encoded) are decoded with their own channel count, or 3/1 channels with force_color/force_gray.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from elasticthought.engine.torch.data import shared_db
from elasticthought.engine.torch.data.batches import (
    BatchTooLarge,
    PrefetchingLayer,
    check_batch_fits,
    layer_seed,
    transform_batch,
)
from elasticthought.engine.torch.data.prefetch import Prefetcher
from elasticthought.engine.torch.layer import register
from elasticthought.engine.torch.transformer import Transformer

log = logging.getLogger("elasticthought.engine")


class DataSourceError(ValueError):
    """The Data layer's source is missing, empty or not a database of Datums."""


def _backend_name(param: Any) -> str:
    from elasticthought.engine.proto import caffe_pb2

    dp = param.data_param
    name = caffe_pb2.DataParameter.DB.Name(dp.backend).lower()
    if not dp.HasField("backend"):
        try:
            from elasticthought.engine.db import detect_backend

            name = detect_backend(dp.source) or name
        except Exception:  # noqa: BLE001 - keep Caffe's default on any doubt
            pass
    return name


def iterate_values(db: Any, source: str) -> Iterator[bytes]:
    """Values of a database in key order, forever (restarting from the first key)."""
    while True:
        count = 0
        for _key, value in db:
            count += 1
            yield value
        if count == 0:
            raise DataSourceError(f"database {source} holds no records")
        log.info("Restarting data prefetching from start.")


def datum_image(value: bytes, transformer: Transformer, source: str) -> tuple[np.ndarray, float]:
    """(C x H x W array, label) of a serialized Datum."""
    from elasticthought.engine.datum import datum_to_array, parse_datum
    from elasticthought.engine.errors import FormatError

    color = True if transformer.force_color else False if transformer.force_gray else None
    try:
        array, label = datum_to_array(parse_datum(value), color)
    except FormatError as exc:
        raise DataSourceError(f"{source}: {exc}") from None
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[None]
    return array, float(label)


@register
class DataLayer(PrefetchingLayer):
    """Caffe's `Data` layer (tops: data and optionally label)."""

    type_name = "Data"
    is_data = True
    has_backward = False

    def __init__(self, param: Any, phase: str, device: torch.device) -> None:
        super().__init__(param, phase, device)
        dp = param.data_param
        self.batch_size = int(dp.batch_size)
        if self.batch_size <= 0:
            raise DataSourceError(f"layer {self.name}: data_param.batch_size must be positive")
        self.source = dp.source
        if not self.source or not os.path.exists(self.source):
            raise DataSourceError(
                f"layer {self.name}: data source {self.source!r} not found "
                f"(relative to {os.getcwd()})"
            )
        self.backend = _backend_name(param)
        self.with_label = len(param.top) > 1
        self.transformer = Transformer(param.transform_param, phase, seed=layer_seed())
        self.rand_skip = int(dp.rand_skip)
        self._skip_seed = layer_seed()
        self._records: Iterator[bytes] | None = None
        self._prefetch = Prefetcher(self._load_batch, depth=int(dp.prefetch) or 1, name=self.name)
        self._db = shared_db.acquire(self.source, self.backend)
        # Peek at the first record for the top shape (Caffe's DataLayerSetUp).
        value = shared_db.first_value(self._db)
        if value is None:
            self.close()
            raise DataSourceError(f"layer {self.name}: database {self.source} holds no records")
        try:
            first, _ = datum_image(value, self.transformer, self.source)
        except Exception:
            self.close()
            raise
        self.top_shape = (self.batch_size, *self.transformer.output_shape(*first.shape))
        try:
            check_batch_fits(f"layer {self.name}", self.top_shape)
        except BatchTooLarge:
            self.close()
            raise

    def _next_record(self) -> bytes:
        if self._records is None:
            self._records = iterate_values(self._db, self.source)
            if self.rand_skip:
                skip = int(np.random.default_rng(self._skip_seed).integers(self.rand_skip))
                for _ in range(skip):
                    next(self._records)
        return next(self._records)

    def _load_batch(self) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for _ in range(self.batch_size):
            image, label = datum_image(self._next_record(), self.transformer, self.source)
            images.append(image)
            labels.append(label)
        return transform_batch(self.transformer, images, labels, f"layer {self.name}")

    def close(self) -> None:
        super().close()
        records, self._records = self._records, None
        if records is not None:
            try:
                records.close()
            except Exception:  # noqa: BLE001 - generator running in the dead thread
                pass
        if self._db is not None:
            self._db = None
            shared_db.release(self.source, self.backend)
