"""`gearview ls [STUDY_UID] [--json]`: studies in the cache, or one study's series."""

from __future__ import annotations

import argparse

from gearview.cli.common import open_station, print_json, print_table
from gearview.errors import NotFoundError
from gearview.qc.status import standings

COMMAND = "ls"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="list studies in the local cache (or one study's series)")
    parser.add_argument("study_uid", nargs="?", help="list this study's series")
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output (SPEC §3 shapes)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    station = open_station()
    cache = station.cache
    try:
        if args.study_uid:
            if cache.study(args.study_uid) is None:
                raise NotFoundError(f"no study {args.study_uid} in the local cache")
            series = cache.series(args.study_uid)
            if args.json:
                print_json([s.to_json() for s in series])
            else:
                print_table(
                    ("NUMBER", "MODALITY", "INSTANCES", "DESCRIPTION", "SERIES UID"),
                    [
                        (
                            s.series_number,
                            s.modality,
                            s.number_of_series_related_instances,
                            s.series_description,
                            s.series_instance_uid,
                        )
                        for s in series
                    ],
                )
            return 0
        studies = cache.studies()
        standing = standings(cache, [s.study_instance_uid for s in studies])
        if args.json:
            print_json([{**s.to_json(), **standing[s.study_instance_uid].to_json()}
                        for s in studies])
        else:
            print_table(
                (
                    "PATIENT",
                    "ID",
                    "BIRTH",
                    "SEX",
                    "DATE",
                    "MOD",
                    "SER",
                    "INST",
                    "DESCRIPTION",
                    "STATUS",
                    "FINDINGS",
                    "STUDY UID",
                ),
                [
                    (
                        s.patient_name,
                        s.patient_id,
                        s.patient_birth_date,
                        s.patient_sex,
                        s.study_date,
                        ",".join(s.modalities_in_study),
                        s.number_of_study_related_series,
                        s.number_of_study_related_instances,
                        s.study_description,
                        standing[s.study_instance_uid].status,
                        ",".join(standing[s.study_instance_uid].findings) or "-",
                        s.study_instance_uid,
                    )
                    for s in studies
                ],
            )
        return 0
    finally:
        station.close()
