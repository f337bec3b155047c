"""`gearview send NODE STUDY_UID|SERIES_UID|PATH...`: C-STORE to a node.

The send runs as a persistent job; when it fails or is interrupted,
`gearview send --retry JOB` (or `gearview jobs retry JOB`) sends only the
instances still missing. Exit 5 when the node could not be reached, 6 when
it refused some instances or did not commit them all. `--anonymize` sends a
de-identified copy (see `gearview anonymize`).
"""

from __future__ import annotations

import argparse

from gearview.cli import deid_options
from gearview.cli.common import (
    add_override_arguments,
    check_override,
    open_station,
    refused,
    run_job,
)
from gearview.errors import InvalidValueError
from gearview.jobqueue import SEND
from gearview.net.nodes import resolve_node
from gearview.net.send import items_for
from gearview.net.tasks import check_burned_in, send_params
from gearview.qc.checks import SafetyFindingsError, guard, studies_of

COMMAND = "send"


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
        studies = studies_of(cache, [i.sop_uid for i in items_for(cache, params["targets"])])
        params["study_uids"] = studies  # a delete of them waits for the send
        # a job sent despite findings keeps its override; a de-identified copy carries no
        # patient identity to mix up
        if not params.get("override") and not params.get("deidentify"):
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
        return run_job(queue, job, "gearview send --retry {id}")
    finally:
        station.close()
