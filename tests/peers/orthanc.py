"""A real Orthanc PACS for tests: free loopback ports, generated config, REST helpers.

Usage (a fixture builds one per test or module):

    with OrthancPeer(tmp_path, modalities={"GEARVIEW": ("GEARVIEW", "127.0.0.1", 11112)}) as pacs:
        pacs.load(paths)                 # DCMTK storescu into Orthanc
        pacs.node("PACS1")               # a gearview Node pointing at it
        pacs.rest("/studies")            # its REST API (urllib, no auth)

Orthanc is started with plugins disabled, authentication off and our AE
registered as a modality (so C-MOVE to us and C-STORE from us both work),
and it is stopped (then killed if it hangs) on exit.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gearview.config import Node
from peers.tools import DCMTK_ENV, free_port, require, wait_for_port


class OrthancPeer:
    """One Orthanc process; `modalities` maps name -> (AET, host, port)."""

    def __init__(
        self,
        workdir: Path,
        aet: str = "ORTHANC",
        modalities: dict[str, tuple[str, str, int]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.binary = require("Orthanc")
        self.workdir = Path(workdir)
        self.aet = aet
        self.dicom_port = free_port()
        self.http_port = free_port()
        while self.http_port == self.dicom_port:
            self.http_port = free_port()
        #: By default our own station (default AE title and port) is a known modality.
        self.modalities = dict(
            modalities if modalities is not None else {"GEARVIEW": ("GEARVIEW", "127.0.0.1", 11112)}
        )
        self.extra = dict(extra or {})
        self.process: subprocess.Popen[bytes] | None = None

    # ---- lifecycle ---------------------------------------------------------

    def config(self) -> dict[str, Any]:
        return {
            "Name": self.aet,
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "HttpServerEnabled": True,
            "RemoteAccessAllowed": True,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "DicomCheckCalledAet": False,
            "DicomCheckModalityHost": False,
            "DicomModalities": {name: list(v) for name, v in self.modalities.items()},
            "Plugins": [],
            "StableAge": 1,
            "ConcurrentJobs": 2,
            "HttpThreadsCount": 4,
            "DicomScpTimeout": 30,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            **self.extra,
        }

    def start(self) -> OrthancPeer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config_path = self.workdir / "orthanc.json"
        config_path.write_text(json.dumps(self.config(), indent=2))
        log = open(self.workdir / "orthanc.log", "wb")  # noqa: SIM115 - kept for the process lifetime
        self.process = subprocess.Popen(
            [self.binary, str(config_path)], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        try:
            wait_for_port(self.http_port, timeout=30)
            wait_for_port(self.dicom_port, timeout=30)
            self._wait_rest()
        except Exception:
            self.stop()
            raise
        return self

    def _wait_rest(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.rest("/system")
                return
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, graceful: bool = False) -> None:
        """Kill Orthanc (its storage is a throw-away test folder; a graceful stop
        costs ~2.5 s per instance), or with `graceful` let it shut down cleanly,
        e.g. to restart it on the same storage."""
        if self.process is None:
            return
        if graceful:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        else:
            self.process.kill()
        self.process.wait(timeout=5)
        self.process = None

    def __enter__(self) -> OrthancPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- helpers -----------------------------------------------------------

    def node(
        self,
        name: str = "ORTHANC",
        roles: Iterable[str] = ("query", "retrieve", "send"),
        timeout: float = 10.0,
    ) -> Node:
        return Node(
            name=name,
            ae_title=self.aet,
            host="127.0.0.1",
            port=self.dicom_port,
            roles=list(roles),
            timeout=timeout,
        )

    def rest(self, path: str, data: Any = None, method: str | None = None) -> Any:
        body = (
            None
            if data is None
            else (data if isinstance(data, bytes) else json.dumps(data).encode())
        )
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method
        )
        with urllib.request.urlopen(req, timeout=30) as rsp:
            raw = rsp.read()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode()

    def load(self, paths: Iterable[Path]) -> None:
        """Store files into Orthanc with DCMTK storescu (the way a modality would)."""
        files = [str(p) for p in paths]
        storescu = require("storescu")
        for start in range(0, len(files), 200):
            subprocess.run(
                [
                    storescu,
                    "-aec",
                    self.aet,
                    "-R",
                    "127.0.0.1",
                    str(self.dicom_port),
                    *files[start : start + 200],
                ],
                env=DCMTK_ENV,
                check=True,
                capture_output=True,
                timeout=120,
            )

    def upload(self, paths: Iterable[Path]) -> None:
        """Store files through the REST API (faster for large fixtures)."""
        for p in paths:
            self.rest("/instances", Path(p).read_bytes(), method="POST")

    def study_instances(self, study_uid: str) -> list[str]:
        """SOP Instance UIDs of a study as Orthanc holds it."""
        found = self.rest(
            "/tools/find",
            {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}, "Expand": True},
        )
        return sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in found)

    def instance_count(self) -> int:
        return int(self.rest("/statistics")["CountInstances"])

    def add_modality(self, name: str, aet: str, host: str, port: int) -> None:
        self.rest(f"/modalities/{name}", {"AET": aet, "Host": host, "Port": port}, method="PUT")


def orthanc_with(
    tmp_path: Path, studies: Iterable[Iterable[Path]] = (), **kwargs: Any
) -> OrthancPeer:
    """Start an Orthanc and load the given file groups with storescu (caller stops it)."""
    peer = OrthancPeer(tmp_path, **kwargs).start()
    try:
        for files in studies:
            peer.load(files)
    except Exception:
        peer.stop()
        raise
    return peer
