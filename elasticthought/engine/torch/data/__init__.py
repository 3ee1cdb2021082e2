"""Data layers of the torch engine (Data, ImageData, MemoryData); importing registers them."""

from __future__ import annotations

from elasticthought.engine.torch.data.db_data import DataLayer
from elasticthought.engine.torch.data.image_data import ImageDataLayer
from elasticthought.engine.torch.data.memory_data import MemoryDataLayer, set_input_arrays

__all__ = ["DataLayer", "ImageDataLayer", "MemoryDataLayer", "set_input_arrays"]
