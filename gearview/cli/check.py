"""`gearview check STUDY_UID... [--json]`: the pre-send safety checks (SPEC §2.10).

Exit 4 when a study has findings, 0 when none does.
"""

from __future__ import annotations

import argparse

from gearview.cli.common import EXIT_FINDINGS, open_station, print_findings, print_json
from gearview.qc.checks import check_studies

COMMAND = "check"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="pre-send safety checks of studies (exit 4 on findings)")
    parser.add_argument("study_uids", nargs="+", metavar="STUDY_UID")
    parser.add_argument("--json", action="store_true",
                        help="print {study_uid, code, message, instances} objects")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    station = open_station()
    try:
        findings = check_studies(station.cache, args.study_uids)
    finally:
        station.close()
    if args.json:
        print_json([f.to_json() for f in findings])
    elif findings:
        print_findings(findings)
    else:
        print(f"no findings in {len(set(args.study_uids))} study(ies)")
    return EXIT_FINDINGS if findings else 0
