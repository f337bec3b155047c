"""`gearview import PATH [reconcile options] [--replace]`: import folder/DICOMDIR/ISO/zip.

Every importable instance is imported; every file that is not is listed in
the report (saved under the home's logs/imports) with its reason. Reconcile
(IHE IRWF) with `--patient-id` (single-patient source), `--map` per outside
patient, or `--order ACCESSION --worklist NODE`; the local record's name,
birth date and sex are adopted (cache, then the `query` nodes, or the order).
"""

from __future__ import annotations

import argparse
import sys

from gearview.cli.common import ProgressBar, open_station, print_json
from gearview.config import Config
from gearview.errors import InvalidValueError
from gearview.media.importer import Reconcile, ReconcileRequest, import_path
from gearview.media.reconcile import parse_map
from gearview.net.nodes import resolve_node
from gearview.net.worklist import default_worklist_node, find_order

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
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="OUTSIDE_ID=LOCAL_ID[@ISSUER]",
        help="reconcile one outside patient of a multi-patient source (repeatable)",
    )
    parser.add_argument(
        "--order",
        metavar="ACCESSION",
        help="adopt this worklist order's patient, accession and requested procedure",
    )
    parser.add_argument(
        "--worklist", metavar="NODE", help="the worklist node of --order (default: the only one)"
    )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="replace cached instances of another patient or study that have the same UID",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def _request(args: argparse.Namespace, config: Config) -> ReconcileRequest | None:
    """What to reconcile to; the order is fetched now, so an unknown one imports nothing."""
    if args.issuer and not args.patient_id:
        raise InvalidValueError("--issuer needs --patient-id", hint="give the local patient ID too")
    if args.worklist and not args.order:
        raise InvalidValueError("--worklist needs --order", hint="give the accession number")
    given = [
        opt
        for opt, value in (
            ("--patient-id", args.patient_id),
            ("--map", args.map),
            ("--order", args.order),
        )
        if value
    ]
    if len(given) > 1:
        raise InvalidValueError(
            f"{' and '.join(given)} cannot be combined",
            hint="--patient-id for one patient, --map per patient, or --order",
        )
    if not given:
        return None
    request = ReconcileRequest(lookup_nodes=[n for n in config.nodes if "query" in n.roles])
    if args.order:
        node = (
            resolve_node(config, args.worklist) if args.worklist else default_worklist_node(config)
        )
        request.order = find_order([node], config, args.order)
    elif args.patient_id:
        request.patient = Reconcile(args.patient_id, args.issuer or "")
    else:
        for text in args.map:
            outside, local = parse_map(text)
            if outside in request.maps:
                raise InvalidValueError(f"outside patient {outside!r} is mapped twice")
            request.maps[outside] = local
    return request


def run(args: argparse.Namespace) -> int:
    station = open_station()
    try:
        request = _request(args, station.config)
    except BaseException:
        station.close()
        raise
    cache = station.cache
    bar = ProgressBar("import")
    try:
        report = import_path(args.path, cache, request, progress=bar, replace=args.replace)
    finally:
        bar.close()
        station.close()
    if args.json:
        print_json(
            {
                "imported": report.imported,
                "studies": sorted(report.studies),
                "not_imported": [{"file": n, "reason": r} for n, r in report.not_imported],
                "conflicts": [c.to_json() for c in report.conflicts],
                "reconciled": report.reconciled,
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
        if report.conflicts:
            print(
                f"{len(report.conflicts)} instance(s) kept as cached: import with --replace "
                "to overwrite them",
                file=sys.stderr,
            )
        if report.path:
            print(f"report: {report.path}", file=sys.stderr)
    return 0
