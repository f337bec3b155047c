"""`gearview import PATH [--patient-id ID [--issuer ISSUER]]`: import folder/DICOMDIR/ISO/zip.

Every importable instance is imported; every file that is not is listed in
the report (saved under the home's logs/imports) with its reason.
"""

from __future__ import annotations

import argparse
import sys

from gearview.cli.common import ProgressBar, context, print_json
from gearview.errors import InvalidValueError
from gearview.media.importer import Reconcile, import_path
from gearview.store import Cache

COMMAND = "import"
MAX_LISTED = 20


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        COMMAND, help="import studies from a folder, DICOMDIR, ISO image or zip"
    )
    parser.add_argument("path", help="folder, DICOMDIR, .iso or .zip (a mounted disc is a folder)")
    parser.add_argument(
        "--patient-id",
        help="reconcile: set this local Patient ID (the outside ID is kept in Other Patient IDs)",
    )
    parser.add_argument("--issuer", help="issuer of the local Patient ID (with --patient-id)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.issuer and not args.patient_id:
        raise InvalidValueError("--issuer needs --patient-id", hint="give the local patient ID too")
    reconcile = Reconcile(args.patient_id, args.issuer or "") if args.patient_id else None
    home, config = context()
    cache = Cache(home, config)
    bar = ProgressBar("import")
    try:
        report = import_path(args.path, cache, reconcile, progress=bar)
    finally:
        bar.close()
        cache.close()
    if args.json:
        print_json(
            {
                "imported": report.imported,
                "studies": sorted(report.studies),
                "not_imported": [{"file": n, "reason": r} for n, r in report.not_imported],
                "warnings": report.warnings,
                "report": str(report.path) if report.path else None,
            }
        )
    else:
        print(report.summary())
        for warning in report.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for name, reason in report.not_imported[:MAX_LISTED]:
            print(f"not imported: {name!r}: {reason}", file=sys.stderr)
        if len(report.not_imported) > MAX_LISTED:
            print(f"... and {len(report.not_imported) - MAX_LISTED} more", file=sys.stderr)
        if report.path:
            print(f"report: {report.path}", file=sys.stderr)
    return 0
