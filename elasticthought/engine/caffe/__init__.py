"""Engine `caffe`: real BVLC Caffe through pycaffe, in a child process (see backend.py)."""

from elasticthought.engine.caffe.backend import (
    DEFAULT_PREFIX,
    DEFAULT_PYTHON,
    CaffeError,
    TrainResult,
    caffe_available,
    caffe_env,
    classify,
    train,
)

__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_PYTHON",
    "CaffeError",
    "TrainResult",
    "caffe_available",
    "caffe_env",
    "classify",
    "train",
]
