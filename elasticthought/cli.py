"""The `elasticthought` command (also installed as `elastic-thought`, the seed's name): one
subcommand per module in `elasticthought.commands`.

Each command module defines `HELP` (one line), `add_arguments(parser)` and `run(args) -> int`,
and imports heavy dependencies (torch, Caffe) inside `run` so that `--help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elasticthought",
        description="Queue, train and serve Caffe models over a REST API.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(seed_compatible(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
