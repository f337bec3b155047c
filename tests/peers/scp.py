"""Helpers for the server tests: run our SCP in-process, run DCMTK tools against it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gearview.config import Config, Node, load_config
from gearview.home import Home
from gearview.net.server import Server
from gearview.station import Station
from gearview.store import Cache

from .tools import DCMTK_ENV, require

AET = "GVTEST"
#: Short timeouts keep the misbehaving-peer tests fast.
FAST = {"acse_timeout": 1.0, "dimse_timeout": 5.0, "network_timeout": 5.0}


def make_config(home: Home, nodes: list[Node] | None = None, **server: Any) -> Config:
    config = load_config(home)
    config.server.port = 0
    config.server.ae_title = AET
    config.server.bind_address = "127.0.0.1"
    for key, value in {**FAST, **server}.items():
        setattr(config.server, key, value)
    config.nodes = list(nodes or [])
    return config.validate()


@contextmanager
def running_server(
    home: Home, nodes: list[Node] | None = None, **server: Any
) -> Iterator[tuple[Server, int, Cache]]:
    """Our SCP on a free loopback port for the duration of a test (a station's server)."""
    with Station(home, make_config(home, nodes, **server)).open() as station:
        port = station.start_server().port
        assert station.server is not None
        yield station.server, port, station.cache


def dcmtk(tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a DCMTK tool with TCP_NODELAY=1 (FACTS: Nagle costs 40 ms per message)."""
    return subprocess.run(
        [require(tool), *args], env=DCMTK_ENV, capture_output=True, text=True, timeout=timeout
    )


def echo(port: int, aet: str = "ECHOSCU") -> subprocess.CompletedProcess[str]:
    return dcmtk(
        "echoscu", "-aet", aet, "-aec", AET, "-to", "5", "127.0.0.1", str(port), timeout=20
    )


def dataset_bytes(path: Path) -> bytes:
    """The bytes after a Part-10 file's meta information (what goes on the wire)."""
    data = path.read_bytes()
    group_length = int.from_bytes(data[140:144], "little")
    return data[144 + group_length :]


def sent_dataset_bytes(path: Path) -> bytes:
    """What storescu puts on the wire for a file: its data set minus a trailing padding element.

    DCMTK drops Data Set Trailing Padding (FFFC,FFFC) when it sends; nothing else changes.
    """
    data = dataset_bytes(path)
    for marker, header in ((b"\xfc\xff\xfc\xffOB\x00\x00", 12), (b"\xfc\xff\xfc\xff", 8)):
        pos = data.rfind(marker)
        if pos < 0:
            continue
        length = int.from_bytes(data[pos + header - 4 : pos + header], "little")
        if pos + header + length == len(data):
            return data[:pos]
    return data
