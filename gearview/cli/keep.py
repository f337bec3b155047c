"""`gearview keep [STUDY_UID...] [--clear] [--reason TEXT]`: protect studies from purging.

With UIDs, marks them "Keep" (the retention policy never purges them) or,
with `--clear`, removes the mark; without UIDs, lists the kept studies.
"""

from __future__ import annotations

import argparse
import datetime as dt

from gearview.cli.common import load_station, print_json, print_table
from gearview.errors import NotFoundError
from gearview.lifecycle.keep import kept, set_kept

COMMAND = "keep"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="protect studies from purging (or list them)")
    parser.add_argument("study_uids", nargs="*", metavar="STUDY_UID")
    parser.add_argument("--clear", action="store_true", help="remove the Keep mark instead")
    parser.add_argument("--reason", default="", help="why (audit log)")
    parser.add_argument("--json", action="store_true", help="list as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.study_uids:
        marks = kept(load_station().home)
        rows = [{"study_uid": uid, "time": dt.datetime.fromtimestamp(m["time"]).isoformat(
            timespec="seconds"), "user": m.get("user", ""), "reason": m.get("reason", "")}
            for uid, m in sorted(marks.items(), key=lambda item: item[1]["time"])]
        if args.json:
            print_json(rows)
        else:
            print_table(("STUDY UID", "SINCE", "USER", "REASON"),
                        [tuple(r.values()) for r in rows])
        return 0
    station = load_station()
    try:
        if not args.clear:
            station.open()
            for uid in args.study_uids:
                if station.cache.study(uid) is None:
                    raise NotFoundError(f"no study {uid} in the local cache",
                                        hint="see `gearview ls`")
        changed = set_kept(station.home, args.study_uids, keep=not args.clear,
                           reason=args.reason)
    finally:
        station.close()
    verb = "released" if args.clear else "kept"
    print(f"{len(changed)} stud{'y' if len(changed) == 1 else 'ies'} {verb}"
          + (f" ({len(args.study_uids) - len(changed)} already were)"
             if len(changed) < len(args.study_uids) else ""))
    return 0
