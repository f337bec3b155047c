"""What every subcommand shares: the station, tables, progress bars."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from gearview.jobs import Progress
from gearview.station import Station


def load_station() -> Station:
    """The station of $GEARVIEW_HOME with its config, not open (enough for config-only work)."""
    return Station.load()


def open_station() -> Station:
    """The station of $GEARVIEW_HOME with its cache open; the command closes it when done."""
    return Station.load().open()


def print_json(data: Any, out: TextIO | None = None) -> None:
    json.dump(data, out or sys.stdout, indent=2, ensure_ascii=False)
    (out or sys.stdout).write("\n")


def print_table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO | None = None
) -> None:
    out = out or sys.stdout
    text_rows = [["" if v is None else str(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    out.write(fmt.format(*headers).rstrip() + "\n")
    for row in text_rows:
        out.write(fmt.format(*row).rstrip() + "\n")


class ProgressBar:
    """A one-line progress bar on stderr when it is a terminal; nothing otherwise (a script
    reading stderr gets only the error line, if any)."""

    def __init__(self, label: str, out: TextIO | None = None, min_interval: float = 0.1) -> None:
        self.label = label
        self.out = out or sys.stderr
        self.tty = self.out.isatty()
        self.min_interval = min_interval
        self._last = 0.0
        self._last_line = ""

    def __call__(self, progress: Progress) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        final = progress.total is not None and progress.done >= progress.total
        if not final and now - self._last < self.min_interval:
            return
        self._last = now
        if progress.total:
            frac = progress.fraction or 0.0
            bar = "#" * int(frac * 30)
            line = f"{self.label} [{bar:<30}] {progress.done}/{progress.total} {progress.message}"
        else:
            line = f"{self.label} {progress.done} {progress.message}"
        self.out.write("\r" + line[:200].ljust(len(self._last_line)))
        self._last_line = line
        self.out.flush()

    def close(self) -> None:
        if self.tty and self._last_line:
            self.out.write("\n")
            self.out.flush()
