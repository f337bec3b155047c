"""C-MOVE and C-GET of compressed studies out of our server: the stored syntax where the
destination takes it, decompressed (losslessly) where it does not, TLS where the node has it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from factory import make_ct
from pydicom.data import get_testdata_file
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    generate_uid,
)

from gearview.config import Node
from peers.orthanc import OrthancPeer
from peers.pki import make_pki
from peers.scp import AET, dcmtk, running_server
from peers.storescp import StoreSCP

pytestmark = pytest.mark.peers
STUDY = generate_uid()


def _compressed_study(folder: Path) -> dict[str, np.ndarray]:
    """One study in JPEG baseline, JPEG 2000 and RLE; the decoded pixels by SOP UID."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "emri_small_jpeg_2k_lossless.dcm"):
        ds = pydicom.dcmread(get_testdata_file(name, download=False))
        ds.StudyInstanceUID = STUDY
        files.append((folder / name, ds))
    for i, ts in enumerate((JPEG2000Lossless, RLELossless), 1):
        ds = make_ct(STUDY, generate_uid(), i)
        ds.compress(ts, generate_instance_uid=False)
        files.append((folder / f"ct{i}.dcm", ds))
    pixels = {}
    for path, ds in files:
        ds.save_as(path, enforce_file_format=True)
        pixels[str(ds.SOPInstanceUID)] = pydicom.dcmread(path).pixel_array
    return pixels


def _move(port: int, destination: str) -> str:
    result = dcmtk("movescu", "-S", "-d", "-aec", AET, "-aem", destination,
                   "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY}",
                   "127.0.0.1", str(port))
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.fixture
def station(home, tmp_path):
    """Our server holding the compressed study, knowing the destinations by node."""
    pixels = _compressed_study(tmp_path / "study")

    def start(nodes: list[Node]):
        return running_server(home, nodes=nodes)

    return pixels, tmp_path / "study", start


def _load(cache, folder: Path) -> None:
    for path in sorted(folder.iterdir()):
        cache.add_file(path)


def test_move_to_an_uncompressed_only_peer_decompresses(station, tmp_path):
    pixels, folder, start = station
    with StoreSCP(tmp_path / "strict") as scp:
        nodes = [Node(name="strict", ae_title=scp.aet, host="127.0.0.1", port=scp.port)]
        with start(nodes) as (_, port, cache):
            _load(cache, folder)
            log = _move(port, scp.aet)
        assert "Completed Suboperations       : 4" in log
        assert "Failed Suboperations          : 0" in log
        received = [pydicom.dcmread(p) for p in sorted((tmp_path / "strict").iterdir())]
    assert len(received) == 4
    for ds in received:
        assert not ds.file_meta.TransferSyntaxUID.is_compressed
        np.testing.assert_array_equal(ds.pixel_array, pixels[str(ds.SOPInstanceUID)])


def test_move_to_orthanc_keeps_the_stored_syntaxes(station, tmp_path):
    pixels, folder, start = station
    stored = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID):
              str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID)
              for p in folder.iterdir()}
    with OrthancPeer(tmp_path / "orthanc", modalities={}) as orthanc:
        nodes = [Node(name="pacs", ae_title=orthanc.aet, host="127.0.0.1",
                      port=orthanc.dicom_port)]
        with start(nodes) as (_, port, cache):
            orthanc.add_modality("GVTEST", AET, "127.0.0.1", port)
            _load(cache, folder)
            assert "Completed Suboperations       : 4" in _move(port, orthanc.aet)
        for sop_uid, syntax in stored.items():
            (found,) = orthanc.rest("/tools/find", {"Level": "Instance",
                                                     "Query": {"SOPInstanceUID": sop_uid}})
            assert orthanc.rest(f"/instances/{found}/metadata/TransferSyntax") == syntax
    assert {JPEGBaseline8Bit, JPEG2000Lossless, RLELossless} <= set(stored.values())


def test_move_to_a_tls_node_goes_over_tls(station, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    pixels, folder, start = station
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    tls = ["+tls", str(pki / "peer.key"), str(pki / "peer.pem"), "+cf", str(pki / "testca.pem")]
    with StoreSCP(tmp_path / "secure", aet="SECURE", extra=tls) as scp:
        nodes = [Node(name="secure", ae_title="SECURE", host="127.0.0.1", port=scp.port,
                      tls=True)]
        with start(nodes) as (server, port, cache):
            server.config.server.tls.cert = str(pki / "station.pem")
            server.config.server.tls.key = str(pki / "station.key")
            server.config.server.tls.ca = str(pki / "testca.pem")
            _load(cache, folder)
            assert "Completed Suboperations       : 4" in _move(port, "SECURE")
        assert len(list((tmp_path / "secure").iterdir())) == 4


def test_get_sends_on_the_requesting_association(station, tmp_path):
    pixels, folder, start = station
    out = tmp_path / "got"
    out.mkdir()
    with start([]) as (_, port, cache):
        _load(cache, folder)
        result = dcmtk("getscu", "-S", "-v", "-aec", AET, "-od", str(out),
                       "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={STUDY}",
                       "127.0.0.1", str(port))
        assert result.returncode == 0, result.stdout + result.stderr
    received = [pydicom.dcmread(p) for p in sorted(out.iterdir())]
    assert len(received) == 4
    for ds in received:
        np.testing.assert_array_equal(ds.pixel_array, pixels[str(ds.SOPInstanceUID)])
