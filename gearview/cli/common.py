"""What every subcommand shares: the station, tables, progress bars."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from gearview.errors import Cancelled, InvalidValueError, PartlyDoneError
from gearview.jobqueue import CANCELLED, DONE, JobQueue, JobRecord
from gearview.jobs import Progress
from gearview.station import Station

#: SPEC §3: safety-check findings (check, a refused send or burn).
EXIT_FINDINGS = 4


def load_station() -> Station:
    """The station of $GEARVIEW_HOME with its config, not open (enough for config-only work)."""
    return Station.load()


def open_station() -> Station:
    """The station of $GEARVIEW_HOME with its cache open; the command closes it when done."""
    return Station.load().open()


def print_json(data: Any, out: TextIO | None = None) -> None:
    json.dump(data, out or sys.stdout, indent=2, ensure_ascii=False)
    (out or sys.stdout).write("\n")


def print_findings(findings: Iterable[Any], out: TextIO | None = None) -> None:
    """Safety-check findings, one line each: `STUDY_UID: code: message`."""
    out = out or sys.stdout
    for f in findings:
        out.write(f"{f.study_uid}: {f.code}: {f.message} ({f.instances} instance(s))\n")


def add_override_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """--force --reason: send or burn despite safety-check findings (audited)."""
    parser.add_argument("--force", action="store_true",
                        help=f"{what} despite safety-check findings (needs --reason)")
    parser.add_argument("--reason", default="", metavar="TEXT",
                        help="why the findings are overridden (goes to the audit log)")


def check_override(args: argparse.Namespace) -> None:
    if args.force and not args.reason.strip():
        raise InvalidValueError("--force needs --reason TEXT", hint="say why, for the audit log")
    if args.reason and not args.force:
        raise InvalidValueError("--reason goes with --force")


def refused(error: Any, force_hint: str) -> int:
    """A send or burn refused on findings: the findings, one error line, exit 4."""
    print_findings(error.findings, sys.stderr)
    print(f"gearview: error: {error.message} ({force_hint})", file=sys.stderr)
    return EXIT_FINDINGS


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


def run_job(queue: JobQueue, job: JobRecord, retry: str) -> int:
    """Run a queued job here with a progress bar and report it (`report_job`)."""
    bar = ProgressBar(f"{job.kind} {job.id}")
    try:
        record = queue.run(job.id, bar)
    finally:
        bar.close()
    return report_job(record, retry.format(id=record.id))


def report_job(record: JobRecord, retry: str) -> int:
    """Print how a job ended (per-instance problems first); returns its SPEC §3 exit code.

    `retry` is the command that resumes it, named in the error line. A send
    that is done but not committed by the node for every instance is partly done.
    """
    for uid, text in record.warnings.items():
        print(f"warning: {uid}: {text}")
    for uid, text in record.failures.items():
        print(f"failed: {uid}: {text}")
    if record.state == DONE:
        print(f"{record.message} (job {record.id})")
        return PartlyDoneError.exit_code if record.result.get("not_committed") else 0
    if record.state == CANCELLED:
        print(f"gearview: cancelled (retry with `{retry}`)", file=sys.stderr)
        return Cancelled.exit_code
    print(f"gearview: error: {record.error or record.message} (retry with `{retry}`)",
          file=sys.stderr)
    return record.exit_code or 1
