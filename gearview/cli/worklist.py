"""`gearview worklist NODE [keys] [--json]`: Modality Worklist C-FIND (the scheduled orders)."""

from __future__ import annotations

import argparse
import sys

from gearview.cli.common import load_station, print_json, print_table
from gearview.net.nodes import resolve_node
from gearview.net.worklist import WorklistQuery, find_worklist

COMMAND = "worklist"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="query a worklist node for orders (Modality Worklist)")
    parser.add_argument("node", metavar="NODE", help="a node name or AET@HOST:PORT")
    parser.add_argument("--patient-name", default="", help="wildcards * and ? allowed")
    parser.add_argument("--patient-id", default="")
    parser.add_argument("--accession", default="")
    parser.add_argument("--date", default="", help="scheduled date YYYYMMDD or YYYYMMDD-YYYYMMDD")
    parser.add_argument("--modality", default="", help="the scheduled modality, e.g. CT")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_station().config
    query = WorklistQuery(
        patient_name=args.patient_name,
        patient_id=args.patient_id,
        accession=args.accession,
        scheduled_date=args.date,
        modality=args.modality,
    ).validate()
    node = resolve_node(config, args.node)
    items = find_worklist(node, config, query)
    for item in items:
        for problem in item.warnings:
            print(f"gearview: warning: order {item.accession!r}: {problem}", file=sys.stderr)
    if args.json:
        print_json([item.to_json() for item in items])
        return 0
    print_table(
        (
            "PATIENT",
            "ID",
            "ISSUER",
            "BIRTH",
            "SEX",
            "ACCESSION",
            "DATE",
            "TIME",
            "MOD",
            "PROCEDURE",
        ),
        [
            (
                i.patient_name,
                i.patient_id,
                i.issuer_of_patient_id,
                i.birth_date,
                i.sex,
                i.accession,
                i.scheduled_date,
                i.scheduled_time,
                i.modality,
                i.requested_procedure_description,
            )
            for i in items
        ],
    )
    return 0
