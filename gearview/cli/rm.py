"""`gearview rm STUDY_UID... [--reason TEXT]`: delete studies from the local cache (audited).

All the named studies go, files and index rows, or none does: an unknown UID
or a study a queued or running job needs is refused (exit 1, the job named)
before anything is deleted. A study that was not sent to any node (or changed
since it was sent) is deleted too - a delete is the user's decision, and the
study deleted most often is a wrong one that must never be sent - but one
warning line names it, and its audit record says so. A delete interrupted by
a crash is finished when the cache is next opened.
"""

from __future__ import annotations

import argparse
import sys

from gearview.cli.common import open_station
from gearview.lifecycle.delete import delete_studies, prepare_delete

COMMAND = "rm"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="delete studies from the local cache (audited)")
    parser.add_argument("study_uids", nargs="+", metavar="STUDY_UID")
    parser.add_argument("--reason", default="", help="why the studies are deleted (audit log)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    station = open_station()
    try:
        cache, queue = station.cache, station.jobs
        deletion = prepare_delete(cache, station.config, args.study_uids, queue)
        if deletion.not_sent:
            print("gearview: warning: not sent to any node (or changed since), deleted from "
                  f"the only copy: {', '.join(deletion.not_sent)}", file=sys.stderr)
        changes = delete_studies(cache, args.study_uids, reason=args.reason, queue=queue,
                                 not_sent=deletion.not_sent)
    finally:
        station.close()
    studies = len(changes.studies_removed)
    print(f"deleted {studies} stud{'y' if studies == 1 else 'ies'}, "
          f"{len(changes.instances_removed)} instance(s)")
    return 0
