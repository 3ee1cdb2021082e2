"""`elasticthought serve`: the REST API and job workers in one process."""

from __future__ import annotations

import argparse

from elasticthought.config import add_config_arguments, config_from_args

HELP = "run the REST API (waitress) and job workers until SIGTERM/SIGINT"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from elasticthought.server import main_guard, serve

    return main_guard(serve, config_from_args(args))
