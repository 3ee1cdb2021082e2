"""`elasticthought worker`: job workers only, no HTTP (scale out by running more of these)."""

from __future__ import annotations

import argparse

from elasticthought.config import add_config_arguments, config_from_args

HELP = "run job workers only (no HTTP) against the configured store until SIGTERM/SIGINT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from elasticthought.server import main_guard, run_workers

    return main_guard(run_workers, config_from_args(args))
