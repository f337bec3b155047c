"""Remote DICOM nodes: parse `AET@host:port`, resolve names, edit the table."""

from __future__ import annotations

import re

from gearview.config import NODE_ROLES, Config, Node
from gearview.errors import ConfigError, InvalidValueError, NotFoundError

_ADDRESS = re.compile(r"^(?P<aet>[^@]{1,16})@(?P<host>\[[^\]]+\]|[^:@\s]+):(?P<port>\d{1,5})$")


def parse_address(text: str, name: str = "") -> Node:
    """`AET@host:port` (IPv6 hosts in brackets) as an unnamed Node."""
    match = _ADDRESS.match(text.strip())
    if not match:
        raise InvalidValueError(
            f"not a node address: {text!r}", hint="use AET@HOST:PORT, e.g. PACS@10.0.0.5:104"
        )
    host = match["host"].strip("[]")
    node = Node(
        name=name or match["aet"].strip(), ae_title=match["aet"], host=host, port=int(match["port"])
    )
    try:
        node.validate("node")
    except ConfigError as exc:
        raise InvalidValueError(f"{text}: {exc.reason}") from None
    return node


def resolve_node(config: Config, text: str) -> Node:
    """A configured node by name, or an ad-hoc `AET@host:port`."""
    node = config.node(text)
    if node is not None:
        return node
    if "@" in text:
        return parse_address(text)
    known = ", ".join(n.name for n in config.nodes) or "none configured"
    raise NotFoundError(
        f"unknown node {text!r} (known: {known})",
        hint="add it with `gearview node add NAME AET@HOST:PORT`",
    )


def parse_roles(text: str) -> list[str]:
    roles = [r.strip().lower() for r in text.split(",") if r.strip()]
    bad = [r for r in roles if r not in NODE_ROLES]
    if bad or not roles:
        raise InvalidValueError(
            f"unknown role(s) {', '.join(bad) or text!r}", hint=f"roles are {', '.join(NODE_ROLES)}"
        )
    return roles


def add_node(
    config: Config,
    name: str,
    address: str,
    roles: list[str] | None = None,
    tls: bool = False,
    replace: bool = False,
) -> Node:
    node = parse_address(address, name=name)
    node.name = name
    if roles:
        node.roles = roles
    node.tls = tls
    node.validate()
    existing = config.node(name)
    if existing is not None:
        if not replace:
            raise InvalidValueError(
                f"a node named {name!r} exists already", hint="remove it first or use --replace"
            )
        config.nodes.remove(existing)
    config.nodes.append(node)
    config.validate()
    return node


def remove_node(config: Config, name: str) -> Node:
    node = config.node(name)
    if node is None:
        raise NotFoundError(f"no node named {name!r}")
    config.nodes.remove(node)
    if config.client.default_send_destination.lower() == name.lower():
        config.client.default_send_destination = ""
    return node
