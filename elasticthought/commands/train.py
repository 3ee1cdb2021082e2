"""`elasticthought train`: train a Caffe solver with the torch engine, like `caffe train`.

Paths given here and inside the solver and net (data sources, snapshot prefix) are relative to
the current directory, as with Caffe. Progress is logged to stderr in Caffe's glog format.
"""

from __future__ import annotations

import argparse

HELP = "train a solver.prototxt with the torch engine (like `caffe train`)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--solver", required=True, help="the solver definition (prototxt)")
    parser.add_argument(
        "--weights",
        default="",
        help="pretrained .caffemodel(s) to start from, comma-separated (fine-tuning)",
    )
    parser.add_argument("--snapshot", default="", help="a .solverstate to resume training from")
    parser.add_argument(
        "--gpu",
        default=None,
        help="CUDA device id (overrides solver_mode/device_id); a comma list uses the first",
    )
    parser.add_argument("--log-file", default="", help="also append the log to this file")
    parser.add_argument(
        "--allow-python-layers",
        action="store_true",
        help="run `Python` layers (user code from python_param.module; the current directory "
        "is searched first). The service never runs them",
    )


def gpu_device(gpu: str | None) -> int | str | None:
    """`--gpu` as a device for the engine: None (use the solver's), an id, or "cpu" for -1."""
    if gpu is None or gpu == "":
        return None
    first = gpu.split(",")[0].strip()
    if first == "all":
        return 0
    value = int(first)
    return "cpu" if value < 0 else value


def run(args: argparse.Namespace) -> int:
    import contextlib
    import logging
    import sys

    from elasticthought.cli import SKIP_TEARDOWN
    from elasticthought.engine.torch.glog import attach, capture

    handler = attach(sys.stderr)
    log = logging.getLogger("elasticthought.engine")
    try:
        with capture(args.log_file) if args.log_file else contextlib.nullcontext():
            code = _train(args, log)
        # A completed run has closed all it opened (solver.close); Python layers run user
        # code, which might leave work to atexit handlers: those keep the interpreter's
        # tear-down, as do failed runs.
        setattr(args, SKIP_TEARDOWN, code == 0 and not args.allow_python_layers)
        return code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - one clear error line, non-zero exit
        log.error("%s: %s", type(exc).__name__, exc)
        return 1
    finally:
        log.removeHandler(handler)


def _train(args: argparse.Namespace, log) -> int:
    import contextlib

    from elasticthought.cli import PROGRAM_RUN
    from elasticthought.engine.allocator import keep_freed_memory
    from elasticthought.engine.torch import startup

    # A program run builds one solver and ends: its start-up is tuned for that (a call of
    # main() inside a longer-lived process leaves that process as it is).
    program = getattr(args, PROGRAM_RUN, False)
    if program:
        keep_freed_memory()
    with startup.setting_up() if program else contextlib.nullcontext():
        if program and not args.allow_python_layers:  # user code might use more of torch
            startup.defer_torch_modules()
        solver = _build_solver(args, log)
    try:
        log.info("Starting Optimization")
        solver.solve(args.snapshot or None)
        log.info("Optimization Done.")
    finally:
        solver.close()
    return 0


def _build_solver(args: argparse.Namespace, log):
    """Import torch and the engine, read the solver and build it (with its nets)."""
    import torch

    from elasticthought.engine.prototxt import read_solver
    from elasticthought.engine.torch.solver import Solver, upgrade_snapshot_prefix

    if args.weights and args.snapshot:
        raise ValueError("Give a snapshot to resume training or weights to finetune but not both.")
    if args.allow_python_layers:
        from elasticthought.engine.torch.layers.python_layer import allow_python_layers

        allow_python_layers()
    param = read_solver(args.solver)
    upgrade_snapshot_prefix(param, args.solver)
    device = gpu_device(args.gpu)
    if device is None and param.HasField("solver_mode") and param.solver_mode == param.GPU:
        device = int(param.device_id)
    if device is None or device == "cpu":
        log.info("Use CPU.")
        device = "cpu"
    else:
        log.info("Use GPU with device ID %s", device)
    if args.weights:
        param.weights.append(args.weights)
    if torch.get_num_threads() < 1:
        torch.set_num_threads(1)
    return Solver(param, device=device)
