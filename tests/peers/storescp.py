"""DCMTK `storescp` as a strict second peer: uncompressed-only by default, optional TLS."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path

from pydicom import dcmread

from gearview.config import Node
from peers.tools import free_port, require, start_dcmtk, stop_process


class StoreSCP:
    """`storescp` on a free loopback port writing every received instance to `out` (+uf)."""

    def __init__(
        self,
        out: Path,
        aet: str = "STORESCP",
        port: int | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.binary = require("storescp")
        self.out = Path(out)
        self.aet = aet
        self.port = port or free_port()
        self.extra = list(extra or [])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> StoreSCP:
        self.out.mkdir(parents=True, exist_ok=True)
        self.process = start_dcmtk(
            [
                self.binary,
                "-aet",
                self.aet,
                "-od",
                str(self.out),
                "+uf",
                "-pm",
                *self.extra,
                str(self.port),
            ],
            self.out.parent / f"storescp-{self.port}.log",
            self.port,
        )
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=5)
            self.process = None

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def __enter__(self) -> StoreSCP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def node(self, name: str = "STRICT", tls: bool = False, timeout: float = 10.0) -> Node:
        return Node(
            name=name,
            ae_title=self.aet,
            host="127.0.0.1",
            port=self.port,
            tls=tls,
            roles=["send"],
            timeout=timeout,
        )

    def received(self) -> Counter[str]:
        """SOP Instance UID -> how many complete files arrived (duplicates count > 1)."""
        counts: Counter[str] = Counter()
        for path in self.out.iterdir():
            try:
                ds = dcmread(path, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - a half-written file from a killed peer
                continue
            counts[str(ds.SOPInstanceUID)] += 1
        return counts
