"""Torch engine speed: LeNet (batch 64) forward+backward per iteration, ours vs hand-written.

Runs our `Net.forward_backward()` on the LeNet train net (Input layers instead of the LMDB Data
layer, the same conv/pool/ip/relu/SoftmaxWithLoss layers) as the solver does (only parameter
diffs kept) and, for reference, pycaffe-style (every blob's diff kept), and a hand-written
`torch.nn.Module` of the same net, on the same batch, in the same process, with the same thread
count. They are timed in interleaved repetitions; the median times and the median of the
per-repetition ratios (ours / hand-written, runs made back to back; target at most 1.15 on the
CPU) are printed. Where real BVLC Caffe is installed (scripts/install-caffe), it is a third
column: the same net, weights, batch and thread count in pycaffe's own process (forward +
backward, timed there), interleaved with the others.

    python -m benchmarks.engine [--threads 1] [--reps 21] [--iters 10] [--device cpu]
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run as a file: see benchmarks/_syspath.py
    import _syspath  # noqa: F401

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from benchmarks.engine_training import HandLeNet  # noqa: E402  (the same LeNet in PyTorch)
from elasticthought.engine.prototxt import parse_net  # noqa: E402
from elasticthought.engine.torch.net import Net  # noqa: E402

LENET = """
name: "LeNet"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 64 dim: 1 dim: 28 dim: 28 } } }
layer { name: "label" type: "Input" top: "label" input_param { shape { dim: 64 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 20 kernel_size: 5 stride: 1
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 50 kernel_size: 5 stride: 1
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
        param { lr_mult: 1 } param { lr_mult: 2 }
        inner_product_param { num_output: 500
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        param { lr_mult: 1 } param { lr_mult: 2 }
        inner_product_param { num_output: 10
          weight_filler { type: "xavier" } bias_filler { type: "constant" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""


def _time(step, iters: int, sync) -> float:
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    return (time.perf_counter() - t0) * 1000.0 / iters


def _caffe_timer(net: Net, data: np.ndarray, label: np.ndarray, threads: int, device: str):
    """Real BVLC Caffe (pycaffe in its own process) on the same net, weights, batch and thread
    count; None (with the reason printed) when it is not installed or the device is not the CPU."""
    if device != "cpu":
        return None
    import tempfile
    from pathlib import Path

    from elasticthought.engine.caffe import caffe_available
    from elasticthought.engine.caffe.timing import CaffeTimer

    ok, why = caffe_available()
    if not ok:
        print(f"real Caffe: not measured ({why})")
        return None
    folder = Path(tempfile.mkdtemp(prefix="et-bench-caffe-"))
    (folder / "lenet.prototxt").write_text(LENET)
    net.save(folder / "lenet.caffemodel")
    return CaffeTimer(
        folder / "lenet.prototxt",
        weights=folder / "lenet.caffemodel",
        inputs={"data": data, "label": label.astype(np.float32)},
        threads=threads,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument(
        "--no-training",
        action="store_true",
        help="skip the whole-iteration training columns (engine_training.py)",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    rng = np.random.RandomState(0)
    data = rng.uniform(0, 1, size=(64, 1, 28, 28)).astype(np.float32)
    label = rng.randint(0, 10, size=64)

    net = Net(parse_net(LENET), "TRAIN", device=dev)
    net.blobs["data"].data = data
    net.blobs["label"].data = label.astype(np.float32)

    hand = HandLeNet().to(dev)
    with torch.no_grad():  # same weights, so both do the same arithmetic
        for mod, name in (
            (hand.conv1, "conv1"),
            (hand.conv2, "conv2"),
            (hand.ip1, "ip1"),
            (hand.ip2, "ip2"),
        ):
            mod.weight.copy_(net.params[name][0].tensor)
            mod.bias.copy_(net.params[name][1].tensor)
    x = torch.from_numpy(data).to(dev)
    y = torch.from_numpy(label).to(dev)

    def ours() -> None:  # the training step as the solver runs it (parameter diffs only)
        net.keep_diffs = False
        net.clear_param_diffs()
        net.forward_backward()

    def ours_all_diffs() -> None:  # pycaffe-style: every blob's diff kept after backward
        net.keep_diffs = True
        net.clear_param_diffs()
        net.forward_backward()

    def theirs() -> None:
        hand.zero_grad()
        F.cross_entropy(hand(x), y).backward()

    hand.zero_grad()
    loss_hand = F.cross_entropy(hand(x), y)
    loss_hand.backward()
    net.clear_param_diffs()
    loss_ours = net.forward_backward()
    print(f"loss ours {loss_ours:.6f}  hand-written {float(loss_hand.detach()):.6f}")
    gdiff = float((net.params["conv1"][0].grad - hand.conv1.weight.grad).abs().max())
    print(f"max |conv1 weight grad difference| {gdiff:.3g}")

    steps = [ours, ours_all_diffs, theirs]
    for _ in range(3):  # warm-up
        for step in steps:
            step()
    times: dict[str, list[float]] = {step.__name__: [] for step in steps}
    caffe = _caffe_timer(net, data, label, args.threads, dev.type)  # real Caffe: 3rd column
    if caffe is not None:
        caffe.time(3)  # warm-up
        times["caffe"] = []
    for rep in range(args.reps):
        order = steps if rep % 2 == 0 else steps[::-1]
        for step in order:
            times[step.__name__].append(_time(step, args.iters, sync))
        if caffe is not None:  # timed inside its process: forward + backward, all blob diffs
            times["caffe"].append(caffe.time(args.iters) * 1000.0 / args.iters)
    med = {name: statistics.median(values) for name, values in times.items()}
    hand = times["theirs"]
    # ratios of runs made back to back cancel most of the machine's load changes
    ratio = statistics.median(a / b for a, b in zip(times["ours"], hand, strict=True))
    ratio_all = statistics.median(a / b for a, b in zip(times["ours_all_diffs"], hand, strict=True))
    print(
        f"LeNet batch 64 forward+backward, {args.threads} thread(s), device {dev}, "
        f"{args.reps} interleaved repetitions x {args.iters} iterations (medians):"
    )
    print(f"  elasticthought Net (solver step)     : {med['ours']:8.2f} ms/iter")
    print(f"  elasticthought Net (all blob diffs)  : {med['ours_all_diffs']:8.2f} ms/iter")
    print(f"  hand-written torch                   : {med['theirs']:8.2f} ms/iter")
    print(f"  ratio ours/hand (solver step)        : {ratio:8.3f}  (target <= 1.15)")
    print(f"  ratio ours/hand (all blob diffs)     : {ratio_all:8.3f}")
    if caffe is not None:
        caffe.close()
        ratio_caffe = statistics.median(
            a / b for a, b in zip(times["ours_all_diffs"], times["caffe"], strict=True)
        )
        label = f"  real BVLC Caffe {caffe.version} (pycaffe)"
        print(f"{label:<39}: {med['caffe']:8.2f} ms/iter")
        print(f"  ratio ours/caffe (all blob diffs)    : {ratio_caffe:8.3f}")
    if not args.no_training:  # training iterations/s and peak memory (engine-2)
        from benchmarks import engine_training as training

        training.main(["--threads", str(args.threads), "--device", args.device])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
