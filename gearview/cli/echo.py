"""`gearview echo NODE`: C-ECHO a configured node or AET@host:port."""

from __future__ import annotations

import argparse

from gearview.cli.common import load_station
from gearview.net.client import echo
from gearview.net.nodes import resolve_node

COMMAND = "echo"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="check a DICOM node answers (C-ECHO)")
    parser.add_argument("node", help="a configured node name or AET@HOST:PORT")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_station().config
    node = resolve_node(config, args.node)
    seconds = echo(node, config)
    print(f"{node.name} ({node.address}): C-ECHO OK in {seconds * 1000:.0f} ms")
    return 0
