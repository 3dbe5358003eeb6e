"""The `sketchshop` command. Each package registers its own subcommands in its `cli.py`.

Registration imports nothing heavy: torch, selenium and friends are imported inside the
command functions, so `sketchshop --help` answers at once.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import math
import os
import re
import sys

from .errors import UserError

# Packages whose `cli.register(cli)` adds commands, in the order of the data flow.
COMMAND_MODULES = (
    "sketchshop.studio.cli", "crawler.cli", "catalog.cli", "classifier.cli", "detector.cli",
    "colorizer.cli", "catalog.search_cli", "server.cli", "mobile_export.cli", "sketchshop.bench",
    "sketchshop.demo", "sketchshop.report",
)
GROUPS = {
    "train": "train a model (classifier, detector, colorizer)",
    "eval": "evaluate a model or the search on labelled data; writes JSON",
    "crawl": "crawl shops into the catalogue, and schedule crawls",
    "dataset": "build training datasets from the catalogue",
    "catalog": "inspect the product catalogue",
    "shop": "the demo shop the crawler can crawl offline",
    "index": "build the search index over the catalogue",
}


def count(lo: int = 1, hi: int | None = None, multiple: int = 1):
    """An argparse type: an integer in [lo, hi] (and a multiple of `multiple`), so that a 0, a negative count or an
    image size of 100000 is a usage error, not a traceback or an out-of-memory kill."""
    def integer(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(_range(lo, hi) + f", not {v}")
        if v % multiple:
            raise argparse.ArgumentTypeError(f"must be a multiple of {multiple}, not {v}")
        return v
    return integer


def number(lo: float = 0.0, hi: float | None = None):
    """An argparse type: a finite number in [lo, hi]."""
    def finite(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not (math.isfinite(v) and v >= lo and (hi is None or v <= hi)):
            raise argparse.ArgumentTypeError(_range(lo, hi) + f", not {text}")
        return v
    return finite


def _range(lo, hi) -> str:
    return f"must be at least {lo}" if hi is None else f"must be between {lo} and {hi}"


PORT = count(1, 65535)


OUTPUT_FILES = ("json", "plot", "sheet", "contact_sheet")  # options that name a file a command writes (not a flag)


class CLI:
    def __init__(self):
        self.parser = argparse.ArgumentParser(
            prog="sketchshop", description="Draw it or snap it, then buy it: the sketchshop backend.")
        self.parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
        self._sub = self.parser.add_subparsers(dest="command", metavar="COMMAND")
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def command(self, name: str, func, help: str, group: str | None = None, description: str | None = None):
        """Add `sketchshop [group] name`; `func(args)` runs it. Returns the parser for its options."""
        sub = self._sub
        if group:
            if group not in self._groups:
                g = self._sub.add_parser(group, help=GROUPS[group], description=GROUPS[group])
                self._groups[group] = g.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
            sub = self._groups[group]
        p = sub.add_parser(name, help=help, description=description or help,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        p.set_defaults(func=func)
        return p


def build() -> CLI:
    cli = CLI()
    for mod in COMMAND_MODULES:
        if importlib.util.find_spec(mod.rsplit(".", 1)[0]) is None or importlib.util.find_spec(mod) is None:
            continue  # that part of the product is not built yet
        importlib.import_module(mod).register(cli)
    return cli


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, newlines: bool = False) -> str:
    """`text` with control characters written as escapes: a file name, a shop's page or an upload cannot
    repaint the terminal (ANSI codes), forge a log line (a newline) or reverse one (bidi overrides)."""
    keep = "\t\n" if newlines else "\t"
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else m.group().encode("unicode_escape").decode("ascii"),
                        text)


class PrintableFormatter(logging.Formatter):
    def formatMessage(self, record: logging.LogRecord) -> str:  # the line itself; a traceback follows unescaped
        return printable(super().formatMessage(record))


def setup_logging(verbose: bool = False) -> None:
    from .config import settings
    level = logging.DEBUG if verbose else getattr(logging, str(settings().log_level).upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PrintableFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=level, handlers=[handler])


def main(argv=None) -> int:
    cli = build()
    try:
        args = cli.parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, argparse has printed why)
        return int(e.code or 0)
    if not getattr(args, "func", None):
        cli.parser.print_help()
        return 2
    try:
        setup_logging(args.verbose)  # reads the settings: a bad config file or variable is a UserError
        for name in OUTPUT_FILES:  # checked before the work, not after it
            if isinstance(getattr(args, name, None), (str, os.PathLike)):
                from .files import check_output_file
                check_output_file(getattr(args, name))
        rc = args.func(args)
    except UserError as e:
        print(f"sketchshop: error: {printable(str(e), newlines=True)}", file=sys.stderr)
        return 2
    except OSError as e:  # a path the user gave (or set in SKETCHSHOP_*): a folder that is a file, /proc, no space
        if args.verbose:
            raise
        print(printable(f"sketchshop: error: {e.strerror or e}{f': {e.filename}' if e.filename else ''}"), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sketchshop: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
