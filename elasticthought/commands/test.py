"""`elasticthought test`: score a trained model, like `caffe test`.

Runs `--iterations` forward passes of the TEST-phase net with `--weights` and logs each batch's
outputs and the mean of every output (and the loss) in Caffe's glog format on stderr.
"""

from __future__ import annotations

import argparse

HELP = "score a model's TEST phase with trained weights (like `caffe test`)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the net definition (prototxt)")
    parser.add_argument("--weights", required=True, help="the trained .caffemodel(s)")
    parser.add_argument("--iterations", type=int, default=50, help="batches to run")
    parser.add_argument("--gpu", default=None, help="CUDA device id (default: CPU)")
    parser.add_argument("--stage", default="", help="comma-separated net stages")
    parser.add_argument("--level", type=int, default=0, help="net level")
    parser.add_argument(
        "--allow-python-layers",
        action="store_true",
        help="run `Python` layers (user code from python_param.module; the current directory "
        "is searched first). The service never runs them",
    )


def score(net, iterations: int, log) -> tuple[float, list[tuple[str, float]]]:
    """Caffe's test loop: (mean loss, [(output name, mean value) per output element])."""
    import numpy as np
    import torch

    from elasticthought.engine.torch.solver import _g, blob_loss_weights, forward_loss

    weights = blob_loss_weights(net)
    totals: list[np.float32] = []
    names: list[str] = []
    loss = np.float32(0)
    with torch.no_grad():
        for i in range(iterations):
            loss += np.float32(forward_loss(net))
            idx = 0
            for name in net.outputs:
                for value in np.asarray(net.blobs[name].data, dtype=np.float32).reshape(-1):
                    if i == 0:
                        totals.append(np.float32(value))
                        names.append(name)
                    else:
                        totals[idx] += value
                    log.info("Batch %d, %s = %s", i, name, _g(float(value)))
                    idx += 1
    mean_loss = float(loss / np.float32(max(iterations, 1)))
    log.info("Loss: %s", _g(mean_loss))
    means = []
    for name, total in zip(names, totals, strict=True):
        mean = float(total / np.float32(iterations))
        weight = float(weights.get(name, 0.0))
        extra = f" (* {_g(weight)} = {_g(weight * mean)} loss)" if weight else ""
        log.info("%s = %s%s", name, _g(mean), extra)
        means.append((name, mean))
    return mean_loss, means


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from elasticthought.engine.torch.glog import attach

    handler = attach(sys.stderr)
    log = logging.getLogger("elasticthought.engine")
    try:
        from elasticthought.commands.train import gpu_device
        from elasticthought.engine.torch.net import Net

        if args.iterations < 1:
            raise ValueError("--iterations must be at least 1")
        device = gpu_device(args.gpu)
        if device is None:
            device = "cpu"
        log.info("Use CPU." if device == "cpu" else f"Use GPU with device ID {device}")
        stages = tuple(s for s in args.stage.split(",") if s)
        if args.allow_python_layers:
            from elasticthought.engine.torch.layers.python_layer import allow_python_layers

            allow_python_layers()
        net = Net(args.model, "TEST", device=device, stages=stages, level=args.level)
        try:
            for path in args.weights.split(","):
                net.copy_from(path.strip())
            log.info("Running for %d iterations.", args.iterations)
            score(net, args.iterations, log)
        finally:
            closer = getattr(net, "close", None)
            if closer is not None:
                closer()
        return 0
    except Exception as exc:  # noqa: BLE001 - one clear error line, non-zero exit
        log.error("%s: %s", type(exc).__name__, exc)
        return 1
    finally:
        log.removeHandler(handler)
