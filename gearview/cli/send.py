"""`gearview send NODE STUDY_UID|SERIES_UID|PATH...`: C-STORE to a node.

The send runs as a persistent job; when it fails or is interrupted,
`gearview send --retry JOB` sends only the instances still missing.
`--anonymize` sends a de-identified copy (see `gearview anonymize`).
"""

from __future__ import annotations

import argparse
import sys

from gearview.cli import deid_options
from gearview.cli.common import (
    ProgressBar,
    add_override_arguments,
    check_override,
    open_station,
    refused,
)
from gearview.errors import InvalidValueError, PartlyDoneError
from gearview.jobqueue import CANCELLED, DONE, SEND
from gearview.net.nodes import resolve_node
from gearview.net.send import items_for
from gearview.net.tasks import check_burned_in, send_params
from gearview.qc.checks import SafetyFindingsError, guard, studies_of

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
    add_override_arguments(parser, "send")
    parser.set_defaults(run=lambda args: deid_options.refusing(lambda: run(args)))


def run(args: argparse.Namespace) -> int:
    deidentify = deid_options.options_from(args)
    station = open_station()
    cache = station.cache
    try:
        queue = station.jobs
        check_override(args)
        if args.retry:
            params = dict(queue.get(args.retry).params)
        elif not args.node or not args.targets:
            raise InvalidValueError(
                "give a node and what to send", hint="gearview send NODE STUDY_UID|PATH..."
            )
        else:
            params = send_params(args.node, [str(t) for t in args.targets], deidentify)
            check_burned_in(cache, params["targets"], deidentify)
        node = resolve_node(station.config, params["node"])
        # a job sent despite findings keeps its override; a de-identified copy carries no
        # patient identity to mix up
        if not params.get("override") and not params.get("deidentify"):
            studies = studies_of(cache, [i.sop_uid for i in items_for(cache, params["targets"])])
            try:
                guard(cache, studies, "send", target=node.name, force=args.force,
                      reason=args.reason)
            except SafetyFindingsError as exc:
                return refused(exc, "nothing was sent; --force --reason TEXT overrides")
            if args.force:
                params["override"] = {"reason": args.reason.strip()}
        if args.retry:
            job = queue.retry(args.retry, params)
        else:
            title = f"Send {'de-identified ' if deidentify else ''}to {node.name}"
            job = queue.submit(SEND, title, params)
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
