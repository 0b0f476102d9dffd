"""`python -m console <command>`. Each domain registers its commands in its own
module (COMMAND_MODULES); the commands call the same `core` services as the pages."""

import argparse
import importlib
import logging
import sys

from base.errors import DomainError
from db.engine import DatabaseUnavailable

COMMAND_MODULES = [
    "console.cli.foundation",
    "console.cli.capacity",
    "console.cli.bindings",
    "console.cli.entries",
    "console.cli.codes",
    "console.cli.metrics",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m console", description="Store WeCom Console commands")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except DomainError as exc:
        from i18n import error_text

        print(f"error: {error_text(exc)}", file=sys.stderr)
        return 1
