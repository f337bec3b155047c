"""`gearview series move SERIES_UID --to STUDY_UID [--reason TEXT] [--force]`.

The GUI's Study ▸ Move series engine (`gearview/edit/structure.py`): the
series' instances take the target study's Study Instance UID and its patient
and study attributes, all or nothing, audited and undoable
(`gearview edit STUDY_UID --undo` on the target). A target study of another
patient is refused unless `--force`; unknown UIDs exit 1 with one line.
"""

from __future__ import annotations

import argparse

from gearview.cli.common import ProgressBar, open_station
from gearview.edit.structure import move_series

COMMAND = "series"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="structure fixes of a series (move to another study)")
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )
    move = actions.add_parser("move", help="move a series into another study")
    move.add_argument("series_uid", metavar="SERIES_UID")
    move.add_argument("--to", dest="study_uid", metavar="STUDY_UID", required=True,
                      help="the study the series moves into")
    move.add_argument("--reason", default="", help="why (audit log)")
    move.add_argument("--force", action="store_true",
                      help="move into a study of another patient (the series takes its identity)")
    move.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    station = open_station()
    bar = ProgressBar("move series")
    try:
        result = move_series(station.cache, [args.series_uid], args.study_uid,
                             reason=args.reason, allow_other_patient=args.force, progress=bar)
    finally:
        bar.close()
        station.close()
    print(f"moved series {args.series_uid} into study {args.study_uid}: "
          f"{len(result.instances)} instance(s) rewritten "
          f"(undo: gearview edit {args.study_uid} --undo)")
    return 0
