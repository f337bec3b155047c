"""Where log records and library warnings go (the CLI and the GUI share this).

- Everything at INFO and above goes to `logs/gearview.log` under the home
  (rotated; PHI is only ever logged at DEBUG).
- The terminal gets no log records by default: a command prints its result
  and, on failure, one `gearview: error: ...` line. `-v` adds gearview's own
  INFO lines and the libraries' warnings, `-vv` everything at DEBUG.
- Library warnings never reach the terminal. pydicom's (an invalid UID, an
  unknown character set) arrive as records of its "pydicom" logger as well as
  Python warnings: code that reads one file collects those raised meanwhile
  on its thread (`collect_warnings`) and reports them for that file, and the
  entry points (`route_warnings`) send the Python warnings to the log file,
  as "warning: <message>", instead of the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from gearview.home import Home

LOG_FILE = "gearview.log"
LOG_BYTES = 5 << 20
LOG_BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
OUR_LOGGERS = "gearview"

_collectors = threading.local()
_warnings_log = logging.getLogger("gearview.warnings")
_install_lock = threading.Lock()


def file_handler(home: Home) -> logging.Handler:
    """A rotating handler for `logs/gearview.log` (INFO and above)."""
    home.logs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    handler = logging.handlers.RotatingFileHandler(
        home.logs_dir / LOG_FILE, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
    )
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


class _Verbosity(logging.Filter):
    """-v: gearview's INFO and the libraries' WARNING; -vv: everything."""

    def __init__(self, verbosity: int) -> None:
        super().__init__()
        self.verbosity = verbosity

    def filter(self, record: logging.LogRecord) -> bool:
        if self.verbosity >= 2:
            return True
        ours = record.name == OUR_LOGGERS or record.name.startswith(OUR_LOGGERS + ".")
        return record.levelno >= (logging.INFO if ours else logging.WARNING)


def terminal_handler(verbosity: int, stream: TextIO | None = None) -> logging.Handler | None:
    """The stderr handler for `-v`/`-vv` (None at the default verbosity: nothing is shown)."""
    if verbosity <= 0:
        return None
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_Verbosity(verbosity))
    handler.setFormatter(logging.Formatter(FORMAT))
    return handler


@contextlib.contextmanager
def logging_to(home: Home | None, verbosity: int = 0) -> Iterator[None]:
    """Log to the home's file (and the terminal with -v) for the duration of a command."""
    route_warnings()
    root = logging.getLogger()
    handlers: list[logging.Handler] = []
    if home is not None:
        try:
            handlers.append(file_handler(home))
        except OSError:
            pass  # an unwritable home: the command itself reports what matters
    terminal = terminal_handler(verbosity)
    if terminal is not None:
        handlers.append(terminal)
    if not handlers:  # else logging's last resort would print warnings on the terminal
        handlers.append(logging.NullHandler())
    previous = root.level
    root.setLevel(logging.DEBUG if verbosity >= 2 else logging.INFO)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(previous)


def route_warnings() -> None:
    """Send Python warnings to the log file instead of the terminal (idempotent; again
    after something, such as `warnings.catch_warnings`, put the old hook back)."""
    with _install_lock:
        if warnings.showwarning is not _show:
            warnings.showwarning = _show


def _show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
          file: TextIO | None = None, line: str | None = None) -> None:
    if "pydicom" in Path(filename).parts:
        return  # pydicom logged it too (see `_Collector`): once in the log is enough
    _warnings_log.warning("warning: %s (%s)", " ".join(str(message).split()),
                          category.__name__)


class _Collector(logging.Handler):
    """pydicom's warning records, handed to the collector active on their thread."""

    def emit(self, record: logging.LogRecord) -> None:
        stack = getattr(_collectors, "stack", None)
        if stack:
            stack[-1].append(" ".join(record.getMessage().split()))


logging.getLogger("pydicom").addHandler(_Collector(logging.WARNING))


@contextlib.contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """pydicom's warnings on this thread inside the block, one text each (for a report);
    thread-safe, unlike `warnings.catch_warnings`."""
    stack = getattr(_collectors, "stack", None)
    if stack is None:
        stack = _collectors.stack = []
    found: list[str] = []
    stack.append(found)
    try:
        yield found
    finally:
        stack.pop()
