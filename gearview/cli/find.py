"""`gearview find NODE... [keys] [--json]`: STUDY-level C-FIND merged over nodes."""

from __future__ import annotations

import argparse
import sys

from gearview.cli.common import load_station, print_json, print_table
from gearview.errors import NetworkError
from gearview.net.client import find_on_nodes
from gearview.net.nodes import resolve_node
from gearview.net.query import StudyQuery

COMMAND = "find"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        COMMAND, help="query one or more nodes for studies (C-FIND, STUDY level)"
    )
    parser.add_argument("nodes", nargs="+", metavar="NODE", help="node names or AET@HOST:PORT")
    parser.add_argument("--patient-name", default="", help="wildcards * and ? allowed")
    parser.add_argument("--patient-id", default="")
    parser.add_argument("--accession", default="")
    parser.add_argument("--study-date", default="", help="YYYYMMDD or YYYYMMDD-YYYYMMDD")
    parser.add_argument("--modality", default="", help="matched on Modalities in Study")
    parser.add_argument("--birth-date", default="", help="YYYYMMDD")
    parser.add_argument("--study-uid", default="")
    parser.add_argument("--json", action="store_true", help="machine-readable output with sources")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_station().config
    query = StudyQuery(
        patient_name=args.patient_name,
        patient_id=args.patient_id,
        accession_number=args.accession,
        study_date=args.study_date,
        modalities_in_study=args.modality,
        patient_birth_date=args.birth_date,
        study_instance_uid=args.study_uid,
    ).validate()
    nodes = [resolve_node(config, name) for name in args.nodes]
    result = find_on_nodes(nodes, config, query)
    if len(result.errors) == len(nodes):
        if len(nodes) == 1:
            raise NetworkError(next(iter(result.errors.values())))
        raise NetworkError("no node answered the query: " + "; ".join(
            f"{name}: {error}" for name, error in result.errors.items()))
    for name, error in result.errors.items():  # the others answered: a partial result
        print(f"gearview: warning: {name}: {error}", file=sys.stderr)
    if args.json:
        print_json([s.to_json() for s in result.studies])
    else:
        print_table(
            (
                "PATIENT",
                "ID",
                "BIRTH",
                "DATE",
                "MOD",
                "ACCESSION",
                "INST",
                "DESCRIPTION",
                "SOURCES",
                "STUDY UID",
            ),
            [
                (
                    s.patient_name,
                    s.patient_id,
                    s.patient_birth_date,
                    s.study_date,
                    ",".join(s.modalities_in_study),
                    s.accession_number,
                    s.number_of_study_related_instances,
                    s.study_description,
                    ",".join(s.sources),
                    s.study_instance_uid,
                )
                for s in result.studies
            ],
        )
    return 0
