"""`elasticthought time`: per-layer forward/backward milliseconds of a net, like `caffe time`.

The net runs in the TRAIN phase by default (as `caffe time`). Forward times are measured per
layer inside the real forward pass. Backward runs as one autograd pass (its total is measured);
the per-layer backward times are measured by re-running each layer alone on the same inputs
and timing only its backward. Output goes to stderr as glog lines.
"""

from __future__ import annotations

import argparse

HELP = "benchmark the forward and backward time of a net, per layer (like `caffe time`)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="the net definition (prototxt)")
    parser.add_argument("--iterations", type=int, default=50, help="iterations to time")
    parser.add_argument("--gpu", default=None, help="CUDA device id (default: CPU)")
    parser.add_argument("--weights", default="", help="optional .caffemodel to load")
    parser.add_argument("--phase", default="TRAIN", choices=["TRAIN", "TEST"])
    parser.add_argument("--stage", default="", help="comma-separated net stages")
    parser.add_argument("--level", type=int, default=0, help="net level")


def _layer_backward_seconds(net, i: int, clock) -> float:
    """Seconds for layer i's backward alone, on copies of its current bottoms (which get
    diffs only where the net's do)."""
    import torch

    layer, spec = net.layers[i], net._specs[i]
    if layer.keeps_tops or layer.is_data or not layer.has_backward:
        return 0.0
    with torch.enable_grad():
        bottoms = [net.blobs[n].tensor.detach().clone() for n in spec.bottoms]
        for j, b in enumerate(bottoms):
            if j not in spec.detach and net.blobs[spec.bottoms[j]].tensor.requires_grad:
                b.requires_grad_(True)
        tops = [t for t in layer.forward(bottoms) if t.requires_grad]
        if not tops:
            return 0.0
        grads = [torch.ones_like(t) for t in tops]
        t0 = clock()
        torch.autograd.backward(tops, grads)
        return clock() - t0


def run(args: argparse.Namespace) -> int:
    from elasticthought.engine.errors import FormatError
    from elasticthought.engine.torch.device import DeviceError
    from elasticthought.engine.torch.glog import attach, engine_logger
    from elasticthought.engine.torch.layer import LayerError, UnsupportedLayer
    from elasticthought.engine.torch.net import Net, NetError, _clock

    attach()
    log = engine_logger()
    if args.iterations < 1:
        log.error("--iterations must be at least 1")
        return 2
    device: str | int = "cpu"
    if args.gpu not in (None, ""):
        try:
            gpu = int(str(args.gpu).split(",")[0])
        except ValueError:
            log.error("--gpu must be a device id, not %r", args.gpu)
            return 2
        device = "cpu" if gpu < 0 else gpu
    stages = [s for s in args.stage.split(",") if s]
    try:
        net = Net(
            args.model,
            args.phase,
            weights=args.weights or None,
            device=device,
            stages=stages,
            level=args.level,
        )
    except (FormatError, NetError, LayerError, UnsupportedLayer, DeviceError, ValueError) as exc:
        log.error("%s", exc)
        return 1

    try:
        _benchmark(net, args.iterations, log, _clock)
    except (LayerError, ValueError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        net.close()
    return 0


def _benchmark(net, iterations: int, log, _clock) -> None:
    """Caffe's `time` loop: forward per layer, backward, per-layer and total averages."""

    def clock() -> float:
        return _clock(net.device)

    n = len(net.layers)
    log.info("Performing Forward")
    net._run(0, n - 1)
    log.info("Initial loss: %g", net._loss_value())
    log.info("Performing Backward")
    net._backward()
    for i in range(n):  # warm-up: first calls of some kernels initialise lazily
        _layer_backward_seconds(net, i, clock)
    log.info("*** Benchmark begins ***")
    log.info("Testing for %d iterations.", iterations)
    fwd = [0.0] * n
    bwd = [0.0] * n
    fwd_total = bwd_total = 0.0
    start = clock()
    for it in range(iterations):
        t0 = clock()
        net._run(0, n - 1, fwd)
        t1 = clock()
        net._backward()
        t2 = clock()
        fwd_total += t1 - t0
        bwd_total += t2 - t1
        log.info("Iteration: %d forward-backward time: %g ms.", it + 1, (t2 - t0) * 1000)
        for i in range(n):
            bwd[i] += _layer_backward_seconds(net, i, clock)
    total = clock() - start
    net.clear_param_diffs()
    k = iterations
    log.info("Average time per layer: ")
    for i, name in enumerate(net.layer_names):
        log.info("%10s\tforward: %g ms.", name, fwd[i] * 1000 / k)
        log.info("%10s\tbackward: %g ms.", name, bwd[i] * 1000 / k)
    log.info("Average Forward pass: %g ms.", fwd_total * 1000 / k)
    log.info("Average Backward pass: %g ms.", bwd_total * 1000 / k)
    log.info("Average Forward-Backward: %g ms.", (fwd_total + bwd_total) * 1000 / k)
    log.info("Total Time: %g ms.", total * 1000)
    log.info("*** Benchmark ends ***")
