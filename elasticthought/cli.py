"""The `elasticthought` command (also installed as `elastic-thought`, the seed's name): one
subcommand per module in `elasticthought.commands`.

Each command module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`,
and imports heavy dependencies (torch, Caffe) inside `run` so that `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

COMMANDS: dict[str, str] = {
    "serve": "elasticthought.commands.serve",
    "worker": "elasticthought.commands.worker",
    "autoscale": "elasticthought.commands.autoscale",
    "train": "elasticthought.commands.train",
    "test": "elasticthought.commands.test",
    "time": "elasticthought.commands.time",
    "convert-imageset": "elasticthought.commands.convert_imageset",
    "compute-image-mean": "elasticthought.commands.compute_image_mean",
    "upgrade-net": "elasticthought.commands.upgrade_net",
    "layers": "elasticthought.commands.layers",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of all commands, or of the command `only` alone (importing just its module:
    a `train` process need not import the service's modules)."""
    parser = argparse.ArgumentParser(
        prog="elasticthought",
        description="Queue, train and serve Caffe models over a REST API.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def seed_compatible(argv: list[str]) -> list[str]:
    """The seed's launch line has no subcommand (`elastic-thought --sync-gw URL`): options
    without a command run `serve`."""
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        return ["serve", *argv]
    return argv


#: True on the parsed arguments when the command runs as the program itself (the console
#: script, `python -m elasticthought`), not as a call of `main(argv)` inside another program:
#: only then may a command tune the process for one run (`engine/torch/startup.py`).
PROGRAM_RUN = "program_run"
#: Set on the parsed arguments by a command whose process may end without the interpreter's
#: tear-down (see `exit_without_teardown`).
SKIP_TEARDOWN = "exit_without_teardown"


def exit_without_teardown(code: int) -> None:
    """End the process now with `code`, after flushing the logs and the standard streams but
    without the interpreter's tear-down, which after a torch run frees every module and object
    one by one (about 0.2 s after a LeNet training). Only for a command that has closed
    everything it opened (files, databases, threads) and runs no user code that might rely on
    atexit handlers: `train` sets `SKIP_TEARDOWN` on its arguments when that holds."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the command in `argv` (default: this program's arguments). Called with the
    program's own arguments (argv None: the console script, `python -m elasticthought`), a
    command that allows it ends the process without the interpreter's tear-down."""
    arguments = seed_compatible(sys.argv[1:] if argv is None else list(argv))
    parser = build_parser(arguments[0] if arguments and arguments[0] in COMMANDS else None)
    args = parser.parse_args(arguments)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    setattr(args, PROGRAM_RUN, argv is None)
    code = int(args._run(args) or 0)
    if argv is None and getattr(args, SKIP_TEARDOWN, False):
        exit_without_teardown(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
