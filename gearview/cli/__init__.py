"""The headless `gearview` commands (SPEC §3).

Each module in this package that defines `COMMAND`, `add_parser(subparsers)`
and `run(args) -> int` is a subcommand; they are discovered, so adding a
command never touches this file. Errors become one line and a non-zero exit.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from types import ModuleType

from gearview import __version__
from gearview.errors import Cancelled, GearviewError

log = logging.getLogger("gearview.cli")
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage dump
        self.exit(
            EXIT_USAGE,
            f"gearview: {message} (see `gearview {self.prog.split()[-1]} --help`)\n"
            if " " in self.prog
            else f"gearview: {message} (see `gearview --help`)\n",
        )


def _command_modules() -> list[ModuleType]:
    modules = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "COMMAND") and hasattr(module, "add_parser"):
            modules.append(module)
    return sorted(modules, key=lambda m: m.COMMAND)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="gearview",
        description="gearview DICOM QC workstation (headless commands). "
        "Run `gearview` without arguments to open the GUI.",
    )
    parser.add_argument("--version", action="version", version=f"gearview {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log output on stderr (-vv for debug, which may show PHI)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules():
        module.add_parser(sub)
    return parser


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING - 10 * min(verbosity, 2)
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # pynetdicom logs each failure it then hands to us; the user reads our one line about it
    logging.getLogger("pynetdicom").propagate = verbosity > 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None) or not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    _setup_logging(args.verbose)
    try:
        return int(args.run(args) or 0)
    except Cancelled:
        print("gearview: cancelled", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("gearview: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except GearviewError as exc:
        print(f"gearview: error: {exc.one_line()}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:  # the user still gets one line, the log keeps the traceback
        log.debug("unexpected error", exc_info=True)
        print(
            f"gearview: internal error: {type(exc).__name__}: {exc} (run with -vv for details)",
            file=sys.stderr,
        )
        return EXIT_ERROR
