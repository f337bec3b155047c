"""`gearview edit STUDY_UID --set KEYWORD=VALUE... [--reason TEXT]`: demographics edit, whole study.

Every value is validated before any file is touched; an invalid one exits 1
with a one-line error naming the field, and nothing changes. `--undo`
restores the study as it was before its last edit.
"""

from __future__ import annotations

import argparse

from gearview.cli.common import ProgressBar, open_station, print_json
from gearview.edit.study_edit import edit_study, plan_edit
from gearview.edit.undo import undo_last
from gearview.errors import InvalidValueError

COMMAND = "edit"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        COMMAND, help="change patient/study attributes of every instance of a study"
    )
    parser.add_argument("study_uid", help="Study Instance UID (see `gearview ls`)")
    parser.add_argument(
        "--set",
        dest="assignments",
        action="extend",
        nargs="+",
        default=[],
        metavar="KEYWORD=VALUE",
        help="DICOM keywords (e.g. PatientName) and their new values: "
        "`--set PatientName=Doe^Jane PatientID=123` (or --set repeated)",
    )
    parser.add_argument("--reason", default="", help="why the study is corrected (audit log)")
    parser.add_argument("--undo", action="store_true", help="undo the study's last edit instead")
    parser.add_argument("--json", action="store_true", help="print the edited study as JSON")
    parser.set_defaults(run=run)


def parse_assignments(items: list[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for item in items:
        keyword, sep, value = item.partition("=")
        if not sep or not keyword.strip():
            raise InvalidValueError(f"--set {item!r}: expected KEYWORD=VALUE")
        if keyword.strip() in values:
            raise InvalidValueError(f"--set {keyword.strip()} given twice")
        values[keyword.strip()] = value
    return values


def run(args: argparse.Namespace) -> int:
    if args.undo and args.assignments:
        raise InvalidValueError("--undo cannot be combined with --set")
    values = {} if args.undo else parse_assignments(args.assignments)
    station = open_station()
    cache = station.cache
    try:
        if args.undo:
            changes = undo_last(cache, args.study_uid)
            message = f"undid the last edit of {len(changes.instances_updated)} instance(s)"
        else:
            plan = plan_edit(cache, args.study_uid, values)
            bar = ProgressBar("edit")
            try:
                result = edit_study(cache, args.study_uid, plan, reason=args.reason, progress=bar)
            finally:
                bar.close()
            message = f"edited {len(result.instances)} of {len(plan.instances)} instance(s)" + (
                f" (undo: gearview edit {args.study_uid} --undo)"
                if result.undo_id
                else " (already had these values)"
            )
        if args.json:
            studies = cache.studies_by_uid([args.study_uid])
            print_json(studies[0].to_json() if studies else None)
        else:
            print(message)
        return 0
    finally:
        station.close()
