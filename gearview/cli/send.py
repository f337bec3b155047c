"""`gearview send NODE STUDY_UID|SERIES_UID|PATH...`: C-STORE to a node.

The send runs as a persistent job; when it fails or is interrupted,
`gearview send --retry JOB` sends only the instances still missing.
`--anonymize` sends a de-identified copy (see `gearview anonymize`).
"""

from __future__ import annotations

import argparse
import sys

from gearview.cli import deid_options
from gearview.cli.common import ProgressBar, open_station
from gearview.errors import InvalidValueError, PartlyDoneError
from gearview.jobqueue import CANCELLED, DONE, SEND
from gearview.net.nodes import resolve_node
from gearview.net.tasks import check_burned_in, send_params

COMMAND = "send"
#: SPEC §3: some instances were sent but not committed by the node.
EXIT_PARTLY_DONE = PartlyDoneError.exit_code


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="send studies, series or files to a node (C-STORE)")
    parser.add_argument("node", nargs="?", help="a configured node name or AET@HOST:PORT")
    parser.add_argument(
        "targets",
        nargs="*",
        metavar="STUDY_UID|PATH",
        help="study/series UIDs in the cache, or DICOM files/folders",
    )
    parser.add_argument(
        "--retry", metavar="JOB", help="resend what is missing from an earlier send job"
    )
    deid_options.add_arguments(parser, switch=True)
    parser.set_defaults(run=lambda args: deid_options.refusing(lambda: run(args)))


def run(args: argparse.Namespace) -> int:
    deidentify = deid_options.options_from(args)
    station = open_station()
    cache = station.cache
    try:
        queue = station.jobs
        if args.retry:
            job = queue.retry(args.retry)
        else:
            if not args.node or not args.targets:
                raise InvalidValueError(
                    "give a node and what to send", hint="gearview send NODE STUDY_UID|PATH..."
                )
            node = resolve_node(station.config, args.node)
            targets = [str(t) for t in args.targets]
            check_burned_in(cache, targets, deidentify)
            title = f"Send {'de-identified ' if deidentify else ''}to {node.name}"
            job = queue.submit(SEND, title, send_params(args.node, targets, deidentify))
        bar = ProgressBar(f"send {job.id}")
        try:
            record = queue.run(job.id, bar)
        finally:
            bar.close()
        for uid, text in record.warnings.items():
            print(f"warning: {uid}: {text}")
        for uid, text in record.failures.items():
            print(f"failed: {uid}: {text}")
        if record.state == CANCELLED:
            print(
                f"gearview: cancelled (retry with `gearview send --retry {record.id}`)",
                file=sys.stderr,
            )
            return 130
        if record.state != DONE:
            print(
                f"gearview: error: {record.error} (retry with `gearview send --retry {record.id}`)",
                file=sys.stderr,
            )
            return record.exit_code or 1
        print(f"{record.message} (job {record.id})")
        return EXIT_PARTLY_DONE if record.result.get("not_committed") else 0
    finally:
        station.close()
