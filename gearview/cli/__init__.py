"""The headless `gearview` commands (SPEC §3).

Each module in this package that defines `COMMAND`, `add_parser(subparsers)`
and `run(args) -> int` is a subcommand; they are discovered, so adding a
command never touches this file. An error becomes one `gearview: error: ...`
line on stderr and the exit status its class names (SPEC §3: 1 error, 5 peer
unreachable or refused, 6 partly done, ...). Log records go to the home's log
file; the terminal shows them only with `-v` (see `gearview.logsetup`).
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
from gearview.home import Home
from gearview.logsetup import logging_to

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
        help="log lines on stderr too: -v gearview's and the libraries' warnings, "
        "-vv everything at debug level (which may show PHI)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules():
        module.add_parser(sub)
    return parser


def _home() -> Home | None:
    """The home the command will use, for the log file (None when it cannot be created)."""
    try:
        return Home.default().ensure()
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None) or not hasattr(args, "run"):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    with logging_to(_home(), args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
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
    except Exception as exc:  # the user still gets one line, the log file keeps the traceback
        log.error("unexpected error in `gearview %s`", args.command, exc_info=True)
        print(
            f"gearview: internal error: {type(exc).__name__}: {exc} (see the log file, "
            "or run with -vv)",
            file=sys.stderr,
        )
        return EXIT_ERROR
