"""`gearview store check|rebuild|purge`: compare the index with the files, recreate it, purge.

`check` first opens the cache as every command does, which rolls back an edit
and finishes a delete that a crash interrupted, so it reports what a user
of the cache would meet. `purge [--dry-run]` applies the retention policy
now (`gearview/lifecycle/retention.py`) and lists what it removes, oldest
first; studies not yet sent are never among them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from gearview.cli.common import ProgressBar, load_station, open_station, print_json, print_table
from gearview.errors import IndexCorruptError
from gearview.lifecycle.retention import PurgePlan, plan_purge, purge
from gearview.lifecycle.space import human, measure, storage_state
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
    purge = actions.add_parser(
        "purge", help="apply the retention policy now ([storage] max_size, min_free)")
    purge.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    purge.set_defaults(run=run_purge)


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


def run_purge(args: argparse.Namespace) -> int:
    station = open_station()
    try:
        cache, config, queue = station.cache, station.config, station.jobs
        plan = plan_purge(cache, config)
        if not plan.limits.any:
            print("no retention limit is set ([storage] max_size, min_free): nothing to purge")
            return 0
        if not plan.needed:
            print(f"within the limits ({storage_state(cache, config).describe()}): "
                  "nothing to purge")
            return 0
        if args.dry_run:
            _print_purge(plan, plan.remove, True, plan.short)
        else:
            removed = purge(cache, config, queue, plan=plan).removed
            _print_purge(plan, removed, False, plan.limits.excess(measure(cache)))
        return 0
    finally:
        station.close()


def _print_purge(plan: PurgePlan, removed: list, dry_run: bool, short: int) -> None:
    total = human(sum(c.size for c in removed))
    verb = "would remove" if dry_run else "removed"
    print(f"{plan.why()}: {verb} {len(removed)} stud{'y' if len(removed) == 1 else 'ies'} "
          f"({total}), oldest first")
    if removed:
        print_table(
            ("SENT", "SIZE", "PATIENT", "ID", "DATE", "STUDY UID"),
            [(dt.datetime.fromtimestamp(c.safe_since).isoformat(sep=" ", timespec="minutes"),
              human(c.size), c.study.patient_name, c.study.patient_id, c.study.study_date,
              c.study.study_instance_uid) for c in removed],
        )
    if plan.protected:
        print("staying: " + ", ".join(f"{n} {why}" for why, n in plan.protected.items()))
    skipped = [c for c in plan.remove if c not in removed]
    if not dry_run and skipped:
        print(f"{len(skipped)} planned stud{'y' if len(skipped) == 1 else 'ies'} stayed "
              "(changed since sent, or in use by a job)", file=sys.stderr)
    if short:
        print(f"gearview: warning: {'would still be' if dry_run else 'still'} over the limits "
              f"by {human(short)}; studies not yet sent are never purged", file=sys.stderr)
