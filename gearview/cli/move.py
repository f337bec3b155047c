"""`gearview move NODE STUDY_UID...`: retrieve studies into the local cache.

C-MOVE needs our server listening: if none is running (no GUI, no
`gearview serve`) the command starts one for the duration. Nodes marked
`get` are retrieved with C-GET instead, which needs no server.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator

from gearview.cli.common import ProgressBar, open_station
from gearview.errors import NetworkError, PartlyDoneError
from gearview.jobqueue import DONE, RETRIEVE
from gearview.net.nodes import resolve_node
from gearview.net.tasks import retrieve_params
from gearview.station import Station

COMMAND = "move"
log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        COMMAND, help="retrieve studies from a node into the local cache (C-MOVE)"
    )
    parser.add_argument("node", help="a configured node name or AET@HOST:PORT")
    parser.add_argument("study_uids", nargs="+", metavar="STUDY_UID")
    parser.set_defaults(run=run)


@contextlib.contextmanager
def station_server(station: Station, needed: bool) -> Iterator[None]:
    """Our SCP for the duration of the move, unless one is already listening."""
    if not needed:
        yield
        return
    try:
        station.start_server()
    except NetworkError as exc:
        log.info(
            "not starting a server (%s); assuming this station's server is running", exc.one_line()
        )
        yield
        return
    try:
        yield
    finally:
        station.stop_server()


def run(args: argparse.Namespace) -> int:
    station = open_station()
    failed: list[int] = []
    try:
        node = resolve_node(station.config, args.node)
        queue = station.jobs
        with station_server(station, needed="get" not in node.roles):
            for study_uid in args.study_uids:
                job = queue.submit(
                    RETRIEVE,
                    f"Retrieve {study_uid} from {node.name}",
                    retrieve_params(args.node, study_uid),
                )
                bar = ProgressBar(f"move {study_uid[-12:]}")
                try:
                    record = queue.run(job.id, bar)
                finally:
                    bar.close()
                if record.state != DONE:
                    failed.append(record.exit_code or 1)
                    print(
                        f"gearview: error: {record.error or record.message} (job {record.id})",
                        file=sys.stderr,
                    )
                    if record.state == "cancelled":
                        return 130
                else:
                    print(f"{study_uid}: {record.message}")
    finally:
        station.close()
    if not failed:
        return 0
    if len(failed) < len(args.study_uids):
        return PartlyDoneError.exit_code  # some studies arrived: retry the others
    return failed[0]
