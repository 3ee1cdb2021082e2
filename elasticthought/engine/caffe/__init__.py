"""Engine `caffe`: real BVLC Caffe through pycaffe, in a child process (see backend.py).

    ok, version = caffe_available(config.caffe_python, config.caffe_prefix)
    result = train("solver.prototxt", work_dir, weights=None | "x.caffemodel",
                   snapshot=None | "prefix_iter_N.solverstate", callback=on_event,
                   cancel_check=cancelled, python=config.caffe_python, prefix=config.caffe_prefix,
                   log_path=work_dir / "train.log")
    # result.state "finished" | "canceled", .iteration, .version, .model, .solverstate, .snapshots
    probs = classify("deploy.prototxt", "model.caffemodel", batch, blobs=["prob"])["prob"]

`callback` receives the torch engine's progress events (train, test, snapshot, done); a Caffe
failure (bad prototxt, failed CHECK, crash) raises CaffeError whose message names the cause.
`timing.CaffeTimer` times forward+backward passes for benchmarks. Build Caffe with
scripts/install-caffe.
"""

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
