"""Fixtures of the end-to-end tests (each area adds its own imports here)."""

from tests.caffe.conftest import caffe_runtime  # noqa: F401 - fixture: real Caffe or fail (CI)
from tests.e2e.classify_support import classify_files  # noqa: F401 - fixture
from tests.e2e.training_support import train_files  # noqa: F401 - fixture
