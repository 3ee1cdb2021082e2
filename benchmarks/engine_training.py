"""Torch engine training speed: whole solver iterations, ours vs a hand-written PyTorch loop.

For LeNet (batch 64, MNIST digits from the golden LMDB) and a CIFAR-10-quick-style net (batch
100, 3x32x32 images in an LMDB), one training iteration of our Solver (Data layer reading the
LMDB with its prefetch thread, forward/backward, Caffe's SGD update with momentum and weight
decay) is timed against a hand-written loop over the same records (decoded once into a uint8
tensor, the usual PyTorch way), the same architecture and the same thread count, with
torch.optim.SGD, and, where scripts/install-caffe built it, against real BVLC Caffe running the
same solver, net and LMDB in pycaffe's own process. Repetitions are interleaved; medians,
iterations/s and the time ratio (ours / hand-written; target <= 1.15 on the CPU) are printed,
for wall time and for this process's CPU time (all threads; less disturbed by other processes
on a shared machine), and the peak memory of each side, measured in its own subprocess (peak
RSS above the imports on the CPU, max allocated on CUDA).

    python -m benchmarks.engine_training [--threads 1] [--reps 7] [--iters 10] [--device cpu]

With `--whole-process`, instead: the whole `elasticthought train` command against real Caffe's
`caffe train` (a fresh process each, start-up included) on the golden LeNet solver
(lenet_mnist_200, shortened to `--lenet-iters`, LMDBs copied to a temporary folder) and on
CIFAR-10-quick (`--cifar-iters`), with 1 and 2 threads, on a quiet machine and with one core
kept busy by a load process; each pair run back to back, ratios ours / caffe and busy / quiet.

    python -m benchmarks.engine_training --whole-process [--lenet-iters 200] [--cifar-iters 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as a file: see benchmarks/_syspath.py
    import _syspath  # noqa: F401

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tests.support.paths import GOLDEN  # noqa: E402

GOLDEN_MNIST = GOLDEN / "lenet" / "lenet_mnist_200" / "mnist_train_lmdb"

LENET = """
name: "LeNet"
layer { name: "mnist" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 }
  data_param { source: "SOURCE" batch_size: 64 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 50 kernel_size: 5 weight_filler { type: "xavier" } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool2" top: "ip1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 500 weight_filler { type: "xavier" } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 10 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

CIFAR = """
name: "CIFAR10_quick"
layer { name: "cifar" type: "Data" top: "data" top: "label"
  transform_param { scale: 0.00390625 }
  data_param { source: "SOURCE" batch_size: 100 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 32 pad: 2 kernel_size: 5
    weight_filler { type: "gaussian" std: 0.0001 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "relu1" type: "ReLU" bottom: "pool1" top: "pool1" }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 32 pad: 2 kernel_size: 5
    weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "conv3" type: "Convolution" bottom: "pool2" top: "conv3"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 64 pad: 2 kernel_size: 5
    weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "relu3" type: "ReLU" bottom: "conv3" top: "conv3" }
layer { name: "pool3" type: "Pooling" bottom: "conv3" top: "pool3"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool3" top: "ip1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 64 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
  param { lr_mult: 1 } param { lr_mult: 2 }
  inner_product_param { num_output: 10 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }
"""

SOLVER = 'base_lr: 0.01 momentum: 0.9 weight_decay: 0.0005 lr_policy: "fixed" max_iter: 1000000'


class HandLeNet(torch.nn.Module):
    """LeNet written directly in PyTorch (logits; the loss is the caller's)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(1, 20, 5)
        self.conv2 = torch.nn.Conv2d(20, 50, 5)
        self.ip1 = torch.nn.Linear(800, 500)
        self.ip2 = torch.nn.Linear(500, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv1(x), 2, 2)
        x = F.max_pool2d(self.conv2(x), 2, 2)
        return self.ip2(F.relu(self.ip1(x.flatten(1))))


class HandCifarQuick(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 32, 5, padding=2)
        self.conv2 = torch.nn.Conv2d(32, 32, 5, padding=2)
        self.conv3 = torch.nn.Conv2d(32, 64, 5, padding=2)
        self.ip1 = torch.nn.Linear(64 * 4 * 4, 64)
        self.ip2 = torch.nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 3, 2, ceil_mode=True))
        x = F.avg_pool2d(F.relu(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.avg_pool2d(F.relu(self.conv3(x)), 3, 2, ceil_mode=True)
        return self.ip2(self.ip1(x.flatten(1)))


MODELS = {
    "lenet": (LENET, HandLeNet, 64, "LeNet (batch 64)"),
    "cifar": (CIFAR, HandCifarQuick, 100, "CIFAR-10-quick (batch 100)"),
}


def make_databases(folder: Path) -> dict[str, Path]:
    """LMDBs of the benchmark: 1024 golden MNIST digits and 1000 random 3x32x32 images."""
    from elasticthought.engine.datum import array_to_datum
    from elasticthought.engine.db import open_db

    paths = {"lenet": folder / "mnist_lmdb", "cifar": folder / "cifar_lmdb"}
    with (
        open_db(str(GOLDEN_MNIST), "lmdb", "r") as src,
        open_db(str(paths["lenet"]), "lmdb", "w") as dst,
    ):
        for i, (key, value) in enumerate(src):
            if i == 1024:
                break
            dst.put(key, value)
    rng = np.random.default_rng(0)
    with open_db(str(paths["cifar"]), "lmdb", "w") as dst:
        for i in range(1000):
            img = rng.integers(0, 256, (3, 32, 32), dtype=np.uint8)
            dst.put(f"{i:08d}", array_to_datum(img, int(rng.integers(10))).SerializeToString())
    return paths


def load_records(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """All records of an LMDB as (uint8 N x C x H x W, int64 labels)."""
    from elasticthought.engine.datum import datum_to_array
    from elasticthought.engine.torch.data import shared_db

    images, labels = [], []
    db = shared_db.acquire(str(path), "lmdb")  # the solver's Data layer may hold it open
    try:
        for _, value in db:
            arr, label = datum_to_array(value)
            images.append(arr)
            labels.append(label)
    finally:
        shared_db.release(str(path), "lmdb")
    return torch.from_numpy(np.stack(images)), torch.tensor(labels)


def build_ours(model: str, source: Path, device: torch.device):
    from elasticthought.engine.prototxt import parse_net, parse_solver
    from elasticthought.engine.torch.solver import Solver

    param = parse_solver(SOLVER)
    param.net_param.CopyFrom(parse_net(MODELS[model][0].replace("SOURCE", str(source))))
    param.random_seed = 1
    solver = Solver(param, device=device)
    return solver, (lambda n: solver.step(n))


def build_hand(model: str, source: Path, device: torch.device):
    torch.manual_seed(1)
    net = MODELS[model][1]().to(device)
    batch = MODELS[model][2]
    images, labels = load_records(source)
    images, labels = images.to(device), labels.to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=0.0005)
    state = {"pos": 0}

    def step(n: int) -> None:
        for _ in range(n):
            pos = state["pos"]
            idx = torch.arange(pos, pos + batch, device=device) % images.shape[0]
            state["pos"] = (pos + batch) % images.shape[0]
            x = images[idx].float() * 0.00390625
            opt.zero_grad()
            loss = F.cross_entropy(net(x), labels[idx])
            loss.backward()
            opt.step()
            loss.item()  # the solver reads every iteration's loss too

    return net, step


def build_caffe(model: str, source: Path, device: torch.device, threads: int):
    """Real BVLC Caffe (pycaffe in its own process) on the same solver, net, LMDB and thread
    count; None (with the reason printed) when it is not installed or the device is not the CPU.
    One call of the returned step runs `solver.step(n)` there."""
    if device.type != "cpu":
        return None, None
    from elasticthought.engine.caffe import caffe_available
    from elasticthought.engine.caffe.timing import CaffeTimer

    ok, why = caffe_available()
    if not ok:
        print(f"real Caffe: not measured ({why})")
        return None, None
    folder = Path(tempfile.mkdtemp(prefix="et-bench-caffe-"))
    (folder / "net.prototxt").write_text(MODELS[model][0].replace("SOURCE", str(source)))
    (folder / "solver.prototxt").write_text(f'net: "net.prototxt" random_seed: 1 {SOLVER}')
    timer = CaffeTimer(solver="solver.prototxt", cwd=folder, threads=threads)
    return timer, timer.time


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_models(models: list[str], paths: dict[str, Path], args) -> dict[str, dict]:
    device = torch.device(args.device)
    results = {}
    for model in models:
        keep_ours, ours = build_ours(model, paths[model], device)
        keep_hand, hand = build_hand(model, paths[model], device)
        keep_caffe, caffe = build_caffe(model, paths[model], device, args.threads)
        ours(3)
        hand(3)
        times: dict[str, list[float]] = {"ours": [], "hand": []}
        cpu: dict[str, list[float]] = {"ours": [], "hand": []}
        if caffe is not None:  # real Caffe as a third column
            caffe(3)
            times["caffe"] = []
        for rep in range(args.reps):
            pair = [("ours", ours), ("hand", hand)] + ([("caffe", caffe)] if caffe else [])
            for name, fn in pair if rep % 2 == 0 else pair[::-1]:
                _sync(device)
                c0, t0 = time.process_time(), time.perf_counter()
                fn(args.iters)
                _sync(device)
                times[name].append((time.perf_counter() - t0) / args.iters)
                if name in cpu:  # this process's CPU time, all threads (prefetch included)
                    cpu[name].append((time.process_time() - c0) / args.iters)
        keep_ours.close()
        del keep_hand
        if keep_caffe is not None:
            keep_caffe.close()
        results[model] = {k: statistics.median(v) for k, v in times.items()}
        results[model].update({f"cpu_{k}": statistics.median(v) for k, v in cpu.items()})
    return results


def peak_memory(model: str, side: str, source: Path, args) -> float:
    """Peak memory (MiB) of `iters` training iterations of one side, in a fresh process."""
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        model,
        side,
        str(source),
        "--threads",
        str(args.threads),
        "--iters",
        str(args.iters),
        "--device",
        args.device,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_mib"])


def _proc_status_mib(field: str) -> float:
    """A /proc/self/status size (VmRSS, VmHWM) in MiB (ru_maxrss survives exec, so no)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory_child(model: str, side: str, source: str, args) -> None:
    """Peak memory above what the imports already use (the same for both sides)."""
    import elasticthought.engine.torch.data  # noqa: F401
    import elasticthought.engine.torch.net  # noqa: F401
    import elasticthought.engine.torch.solver  # noqa: F401

    device = torch.device(args.device)
    build = build_ours if side == "ours" else build_hand
    base = _proc_status_mib("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    keep, step = build(model, Path(source), device)
    step(args.iters)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = _proc_status_mib("VmHWM") - base
    if side == "ours":
        keep.close()
    print(json.dumps({"peak_mib": peak}))


CAFFE_PREFIX = Path("/opt/elasticthought-caffe")


def whole_process_cases(folder: Path, lenet_iters: int, cifar_iters: int) -> dict[str, Path]:
    """Solver files: the golden LeNet solver (shortened) and CIFAR-10-quick on random images."""
    import re

    lenet = folder / "lenet"
    golden = GOLDEN / "lenet" / "lenet_mnist_200"
    lenet.mkdir()
    for name in ("mnist_train_lmdb", "mnist_test_lmdb"):
        shutil.copytree(golden / name, lenet / name)
    shutil.copyfile(golden / "lenet_train_test.prototxt", lenet / "lenet_train_test.prototxt")
    solver = (golden / "lenet_solver.prototxt").read_text()
    solver = re.sub(r"(?m)^max_iter:.*$", f"max_iter: {lenet_iters}", solver)
    solver = re.sub(r"(?m)^display:.*$", "display: 20", solver)
    solver = re.sub(r"(?m)^snapshot:.*$", "snapshot: 0", solver)
    (lenet / "lenet_solver.prototxt").write_text(solver)
    cifar = folder / "cifar"
    cifar.mkdir()
    paths = make_databases(folder / "dbs")
    (cifar / "net.prototxt").write_text(CIFAR.replace("SOURCE", str(paths["cifar"])))
    (cifar / "solver.prototxt").write_text(
        f'net: "net.prototxt"\n{SOLVER.replace("max_iter: 1000000", f"max_iter: {cifar_iters}")}'
        "\ndisplay: 10\nsnapshot: 0\nsnapshot_after_train: false\nsolver_mode: CPU\n"
    )
    return {"lenet": lenet / "lenet_solver.prototxt", "cifar": cifar / "solver.prototxt"}


def run_train(side: str, solver: Path, threads: int, extra_env: dict | None = None) -> float:
    """Wall seconds of one whole training process (`ours` or `caffe`)."""
    return run_train_timed(side, solver, threads, extra_env)["wall"]


def installed_package_env(folder: Path, as_source: bool) -> dict[str, str]:
    """The environment under which ours runs as installed: a copy of this checkout's package,
    byte-compiled as the Docker images do at build time (`compileall`), first on PYTHONPATH.
    (This checkout may run with PYTHONDONTWRITEBYTECODE, which makes every process compile
    our modules from source, about 0.2 s of start-up.) Empty with `as_source`."""
    import compileall

    if as_source:
        return {}
    package = Path(__file__).resolve().parents[1] / "elasticthought"
    target = folder / "installed"
    shutil.copytree(
        package, target / "elasticthought", ignore=shutil.ignore_patterns("__pycache__")
    )
    if not compileall.compile_dir(str(target / "elasticthought"), quiet=1):
        raise RuntimeError("compileall failed on the package copy")
    return {"PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}


def run_train_timed(side: str, solver: Path, threads: int, extra_env: dict | None = None) -> dict:
    """One whole training process (`ours` or `caffe`): wall and CPU seconds (user + system,
    all threads), the epoch second it was started and its glog output (stderr); `extra_env`
    is added to the environment of ours."""
    import resource

    from elasticthought.engine.caffe.backend import caffe_env

    if side == "ours":
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "OMP_WAIT_POLICY": "PASSIVE", **(extra_env or {})}  # fmt: skip
        cmd = [sys.executable, "-m", "elasticthought", "train", "--solver", solver.name]
    else:
        env = caffe_env(str(CAFFE_PREFIX), threads)
        cmd = [str(CAFFE_PREFIX / "bin" / "caffe"), "train", f"--solver={solver.name}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=solver.parent, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    ended = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{side} train failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": elapsed, "cpu": cpu, "started": started, "ended": ended,
            "log": done.stderr}  # fmt: skip


# Phases of a `train` process, each ending at the first glog line containing its marker (the
# same lines in both engines' logs); the last phase ends when the process has exited.
PHASES = (
    ("start-up (interpreter, imports)", "] Use CPU."),
    ("solver set-up (nets, LMDBs, fillers)", "] Iteration 0, Testing net"),
    ("iterations (with test passes, snapshot)", "] Optimization Done."),
    ("tear-down (after the last line)", None),
)


def glog_seconds(line: str, day_epoch: float) -> float:
    """The epoch second of a glog line (`I20261202 21:13:05.410492 ...`)."""
    hh, mm, ss = line[10:25].split(":")
    return day_epoch + int(hh) * 3600 + int(mm) * 60 + float(ss)


def phase_times(run: dict) -> list[float]:
    """Seconds of each of PHASES in one run of `run_train_timed`."""
    import datetime

    start = datetime.datetime.fromtimestamp(run["started"])
    day_epoch = datetime.datetime(start.year, start.month, start.day).timestamp()
    lines = run["log"].splitlines()
    marks = [run["started"]]
    for _, marker in PHASES:
        if marker is None:
            marks.append(run["ended"])
            continue
        hit = next(line for line in lines if marker in line)
        marks.append(glog_seconds(hit, day_epoch))
    return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def startup_breakdown(args: argparse.Namespace) -> int:
    """Where the time of whole `train` processes goes (LeNet, `--threads`), ours and Caffe
    (and ours with `--variant` environments) interleaved `--reps` times; medians per phase, of
    wall and CPU time."""
    folder = Path(tempfile.mkdtemp(prefix="et-bench-whole-"))
    installed = installed_package_env(folder, args.as_source)
    sides: dict[str, tuple[str, dict]] = {"ours": ("ours", installed)}
    for i, variant in enumerate(args.variant, 1):  # NAME=VALUE[,NAME=VALUE...]
        env = dict(item.split("=", 1) for item in variant.split(","))
        sides[f"ours-v{i}"] = ("ours", {**installed, **env})
        print(f"ours-v{i}: ours with {variant}")
    if (CAFFE_PREFIX / "bin" / "caffe").exists():
        sides["caffe"] = ("caffe", {})
    names = list(sides)
    try:
        solver = whole_process_cases(folder, args.lenet_iters, args.cifar_iters)["lenet"]
        runs: dict[str, list[dict]] = {name: [] for name in names}
        loads = []
        for rep in range(args.reps):
            for name in names if rep % 2 == 0 else names[::-1]:
                kind, env = sides[name]
                runs[name].append(run_train_timed(kind, solver, args.threads, env))
            loads.append(os.getloadavg()[0])
        print(f"Whole-process LeNet, {args.lenet_iters} iterations, {args.threads} thread(s), "
              f"median of {args.reps} interleaved runs, load average "
              f"{min(loads):.2f}-{max(loads):.2f}:")  # fmt: skip
        width = max(len(name) for name in names)
        print(f"  {'':42s}" + "".join(f"  {name:>{width}s}" for name in names))
        phases = {name: [phase_times(r) for r in runs[name]] for name in names}
        for i, (phase, _) in enumerate(PHASES):
            print(f"  {phase:42s}" + "".join(
                f"  {statistics.median(p[i] for p in phases[name]):{width - 2}.3f} s"
                for name in names
            ))  # fmt: skip
        for what in ("wall", "cpu"):
            med = {name: statistics.median(r[what] for r in runs[name]) for name in names}
            line = f"  {'total ' + what:42s}" + "".join(
                f"  {med[name]:{width - 2}.3f} s" for name in names
            )
            if "caffe" in med:
                line += "  ours/caffe " + " ".join(
                    f"{med[name] / med['caffe']:5.2f}" for name in names if name != "caffe"
                )
            print(line, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def whole_process(args: argparse.Namespace) -> int:
    """`elasticthought train` vs `caffe train`, quiet and with one busy core."""
    have_caffe = (CAFFE_PREFIX / "bin" / "caffe").exists()
    sides = ["ours", "caffe"] if have_caffe else ["ours"]
    folder = Path(tempfile.mkdtemp(prefix="et-bench-whole-"))
    print(f"Whole-process training: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"LeNet {args.lenet_iters} iterations, CIFAR-10-quick {args.cifar_iters}"
          + ("" if have_caffe else "; real Caffe not installed"), flush=True)  # fmt: skip
    try:
        installed = installed_package_env(folder, args.as_source)
        solvers = whole_process_cases(folder, args.lenet_iters, args.cifar_iters)
        for model in [m for m in args.models.split(",") if m]:
            for threads in (1, 2):
                quiet: dict[str, float] = {}
                for load in ("quiet", "busy core"):
                    hog = None
                    if load != "quiet":
                        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                    try:
                        times = {
                            side: run_train(side, solvers[model], threads, installed)
                            for side in sides
                        }
                    finally:
                        if hog is not None:
                            hog.kill()
                            hog.wait()
                    line = f"  {model:5s} {threads} thread(s) {load:9s}: "
                    line += f"ours {times['ours']:6.2f} s"
                    if "caffe" in times:
                        line += (f"  caffe {times['caffe']:6.2f} s  ours/caffe "
                                 f"{times['ours'] / times['caffe']:5.2f}")  # fmt: skip
                    if quiet:
                        line += "  busy/quiet: " + "  ".join(
                            f"{side} {times[side] / quiet[side]:4.2f}" for side in sides
                        )
                    else:
                        quiet = times
                    print(line, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="lenet,cifar")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs")
    ap.add_argument(
        "--whole-process",
        action="store_true",
        help="whole `elasticthought train` vs `caffe train` processes instead",
    )
    ap.add_argument(
        "--startup-breakdown",
        action="store_true",
        help="where the time of whole LeNet `train` processes goes, per phase",
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=VALUE[,...]",
        help="with --startup-breakdown: also ours with these environment variables",
    )
    ap.add_argument(
        "--as-source",
        action="store_true",
        help="whole processes: run this checkout's package as it is (not byte-compiled)",
    )
    ap.add_argument("--lenet-iters", type=int, default=200)
    ap.add_argument("--cifar-iters", type=int, default=20)
    ap.add_argument(
        "--memory-child", nargs=3, metavar=("MODEL", "SIDE", "SOURCE"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if args.memory_child:
        memory_child(*args.memory_child, args)
        return 0
    if args.startup_breakdown:
        return startup_breakdown(args)
    if args.whole_process:
        return whole_process(args)
    models = [m for m in args.models.split(",") if m]
    folder = Path(tempfile.mkdtemp(prefix="et-bench-"))
    try:
        paths = make_databases(folder)
        results = time_models(models, paths, args)
        print(
            f"Training iterations (Data layer + forward/backward + SGD update), "
            f"{args.threads} thread(s), device {args.device}, median of {args.reps} x "
            f"{args.iters} iterations, interleaved:"
        )
        for model in models:
            r = results[model]
            line = (
                f"  {MODELS[model][3]:28s} ours {1 / r['ours']:7.2f} it/s "
                f"({r['ours'] * 1000:7.2f} ms)  hand-written {1 / r['hand']:7.2f} it/s "
                f"({r['hand'] * 1000:7.2f} ms)  ratio {r['ours'] / r['hand']:5.3f} "
                f"(target <= 1.15)"
            )
            line += (
                f"\n  {'':28s} CPU time per iteration (all threads of the process): "
                f"ours {r['cpu_ours'] * 1000:7.2f} ms  hand-written "
                f"{r['cpu_hand'] * 1000:7.2f} ms  ratio {r['cpu_ours'] / r['cpu_hand']:5.3f}"
            )
            if "caffe" in r:
                line += (
                    f"\n  {'':28s} real BVLC Caffe {1 / r['caffe']:7.2f} it/s "
                    f"({r['caffe'] * 1000:7.2f} ms)  ratio ours/caffe "
                    f"{r['ours'] / r['caffe']:5.3f}"
                )
            if not args.no_memory:
                mem_ours = peak_memory(model, "ours", paths[model], args)
                mem_hand = peak_memory(model, "hand", paths[model], args)
                kind = (
                    "CUDA max allocated"
                    if args.device.startswith("cuda")
                    else "peak RSS above imports"
                )
                line += (
                    f"\n  {'':28s} {kind}: ours {mem_ours:7.1f} MiB  hand-written "
                    f"{mem_hand:7.1f} MiB  ratio {mem_ours / mem_hand:5.3f}"
                )
            print(line, flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
