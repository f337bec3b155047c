"""`gearview study split STUDY_UID SERIES_UID... | study merge STUDY_UID INTO_STUDY_UID`.

The GUI's Split study / Merge studies engine (`gearview/edit/structure.py`),
all or nothing, audited and undoable (`gearview edit STUDY_UID --undo`).
`split` moves the named series into a new study (its UID is printed);
`merge` moves every series of the first study into the second and is
refused when they belong to different patients. Errors exit 1 with one line.
"""

from __future__ import annotations

import argparse

from gearview.cli.common import ProgressBar, open_station
from gearview.edit.structure import merge_studies, split_study

COMMAND = "study"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="structure fixes of studies (split, merge)")
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )
    split = actions.add_parser("split", help="move some series of a study into a new study")
    split.add_argument("study_uid", metavar="STUDY_UID")
    split.add_argument("series_uids", nargs="+", metavar="SERIES_UID")
    split.add_argument("--reason", default="", help="why (audit log)")
    split.set_defaults(run=run)
    merge = actions.add_parser("merge", help="move every series of a study into another")
    merge.add_argument("study_uid", metavar="STUDY_UID")
    merge.add_argument("into_study_uid", metavar="INTO_STUDY_UID")
    merge.add_argument("--reason", default="", help="why (audit log)")
    merge.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    station = open_station()
    cache = station.cache
    bar = ProgressBar(args.action)
    try:
        if args.action == "split":
            new_uid, result = split_study(cache, args.study_uid, args.series_uids,
                                          reason=args.reason, progress=bar)
            message = (f"split into new study {new_uid}: {len(result.instances)} instance(s) "
                       f"rewritten (undo: gearview edit {new_uid} --undo)")
        else:
            result = merge_studies(cache, args.study_uid, args.into_study_uid,
                                   reason=args.reason, progress=bar)
            message = (f"merged into study {args.into_study_uid}: {len(result.instances)} "
                       f"instance(s) rewritten (undo: gearview edit {args.into_study_uid} --undo)")
    finally:
        bar.close()
        station.close()
    print(message)
    return 0
