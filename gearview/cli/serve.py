"""`gearview serve`: run the DICOM server headless until SIGINT/SIGTERM.

The retention policy runs alongside (`lifecycle/monitor.py`): checked after
each received study and hourly; a full cache answers new stores with A700.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from gearview.cli.common import load_station
from gearview.config import validate_ae_title, validate_port

COMMAND = "serve"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        COMMAND, help="run the DICOM server (Storage, Verification, Q/R) headless"
    )
    parser.add_argument("--port", type=int, help="port to listen on (0: any free port, printed)")
    parser.add_argument("--aet", help="our AE title (default: server.ae_title)")
    parser.add_argument("--bind", metavar="ADDR", help="address to listen on (default: all)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    station = load_station()
    config = station.config
    if args.port is not None:
        config.server.port = validate_port("--port", args.port, allow_zero=True)
    if args.aet is not None:
        config.server.ae_title = validate_ae_title("--aet", args.aet)
    if args.bind is not None:
        config.server.bind_address = args.bind
    station.open()
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        state = station.start_server()  # with the station's retention monitor
        print(
            f"listening on {state.ae_title}@{config.server.bind_address or '0.0.0.0'}:{state.port}",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
    finally:
        station.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("stopped", file=sys.stderr)
    return 0
