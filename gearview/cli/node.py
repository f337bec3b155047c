"""`gearview node add|ls|rm`: the remote node table in config.toml."""

from __future__ import annotations

import argparse

from gearview.cli.common import load_station, print_json, print_table
from gearview.config import save_config
from gearview.net.nodes import add_node, parse_roles, remove_node

COMMAND = "node"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="manage remote DICOM nodes")
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, parser_class=type(parser)
    )
    add = actions.add_parser("add", help="add a node: NAME AET@HOST:PORT")
    add.add_argument("name")
    add.add_argument("address", metavar="AET@HOST:PORT")
    add.add_argument(
        "--roles",
        type=parse_roles,
        default=None,
        help="comma list of query,retrieve,send,get,commit (default query,retrieve,send)",
    )
    add.add_argument("--tls", action="store_true", help="use TLS for this node")
    add.add_argument("--replace", action="store_true", help="replace a node of the same name")
    add.add_argument(
        "--default-send", action="store_true", help="make it the default send destination"
    )
    add.set_defaults(run=run)
    ls = actions.add_parser("ls", help="list nodes")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(run=run)
    rm = actions.add_parser("rm", help="remove a node")
    rm.add_argument("name")
    rm.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    station = load_station()
    home, config = station.home, station.config
    if args.action == "add":
        node = add_node(
            config, args.name, args.address, args.roles, tls=args.tls, replace=args.replace
        )
        if args.default_send:
            config.client.default_send_destination = node.name
        save_config(home, config)
        print(f"added {node.name} {node.address} roles={','.join(node.roles)}")
    elif args.action == "rm":
        node = remove_node(config, args.name)
        save_config(home, config)
        print(f"removed {node.name}")
    else:
        default = config.client.default_send_destination.lower()
        if args.json:
            print_json(
                [
                    {
                        "name": n.name,
                        "ae_title": n.ae_title,
                        "host": n.host,
                        "port": n.port,
                        "roles": n.roles,
                        "tls": n.tls,
                    }
                    for n in config.nodes
                ]
            )
        else:
            print_table(
                ("NAME", "ADDRESS", "ROLES", "TLS", "DEFAULT"),
                [
                    (
                        n.name,
                        n.address,
                        ",".join(n.roles),
                        "yes" if n.tls else "",
                        "*" if n.name.lower() == default else "",
                    )
                    for n in config.nodes
                ],
            )
    return 0
