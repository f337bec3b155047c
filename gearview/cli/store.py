"""`gearview store check|rebuild`: compare the index with the files, or recreate it.

`check` first opens the cache as every command does, which rolls back an edit
and finishes a delete that a crash interrupted, so it reports what a user
of the cache would meet.
"""

from __future__ import annotations

import argparse
import sys

from gearview.cli.common import ProgressBar, load_station, print_json
from gearview.errors import IndexCorruptError
from gearview.station import Station

COMMAND = "store"
EXIT_DIRTY = 3


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="check or rebuild the local cache index")
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )
    check = actions.add_parser("check", help="report missing, orphan and unreadable files")
    check.add_argument(
        "--quick", action="store_true", help="compare names only, do not parse files"
    )
    check.add_argument("--json", action="store_true")
    check.set_defaults(run=run)
    rebuild = actions.add_parser("rebuild", help="recreate the index from the files alone")
    rebuild.set_defaults(run=run)


def _recover(station: Station) -> None:
    """Open the cache: crash leftovers of edits and deletes are dealt with."""
    try:
        station.open()
    except IndexCorruptError:
        pass  # check_store reports the damaged index


def run(args: argparse.Namespace) -> int:
    station = load_station()
    station.files_dir.mkdir(parents=True, exist_ok=True)
    bar = ProgressBar(args.action)
    try:
        if args.action == "rebuild":
            report, _ = station.rebuild_index(progress=bar)
            bar.close()
            if report.moved_aside:
                print(f"the damaged index was kept as {report.moved_aside}")
            print(
                f"indexed {report.indexed} instances; skipped {len(report.skipped)} unreadable "
                f"files; removed {report.spool_cleared} spool leftovers"
            )
            for rel, reason in report.skipped:
                print(f"  unreadable {rel}: {reason}")
            return 0
        _recover(station)
        report = station.check_store(verify=not args.quick, progress=bar)
    finally:
        bar.close()
        station.close()
    if args.json:
        print_json(
            {
                "clean": report.clean,
                "indexed": report.indexed,
                "files": report.files,
                "missing": report.missing,
                "orphans": report.orphans,
                "unreadable": [{"path": p, "reason": r} for p, r in report.unreadable],
                "spool_leftovers": report.spool_leftovers,
                "integrity": report.integrity,
            }
        )
    else:
        print(
            f"{report.indexed} indexed, {report.files} files; {len(report.missing)} missing, "
            f"{len(report.orphans)} orphan, {len(report.unreadable)} unreadable, "
            f"{report.spool_leftovers} spool leftovers; index integrity {report.integrity}"
        )
        for rel in report.missing:
            print(f"  missing   {rel}")
        for rel in report.orphans:
            print(f"  orphan    {rel}")
        for rel, reason in report.unreadable:
            print(f"  unreadable {rel}: {reason}")
        if not report.clean:
            print(
                "run `gearview store rebuild` to recreate the index from the files", file=sys.stderr
            )
    return 0 if report.clean else EXIT_DIRTY
