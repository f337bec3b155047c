"""Our SCP against DCMTK peers: echo, store in every sample syntax, find, move."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from factory import write_series
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import EncapsulatedPDFStorage, ExplicitVRLittleEndian, generate_uid

from gearview import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from gearview import events as ev
from gearview.config import Node
from gearview.net.server import Server
from peers.scp import AET, dataset_bytes, dcmtk, echo, make_config, running_server
from peers.tools import DCMTK_ENV, free_port, require, wait_for_port

pytestmark = pytest.mark.peers

#: (pydicom test file, extra storescu options proposing its own syntax)
SAMPLES = [
    ("CT_small.dcm", []),  # Explicit VR LE
    ("MR_small_implicit.dcm", ["-xi"]),  # Implicit VR LE
    ("MR_small_bigendian.dcm", ["-xb"]),  # Explicit VR BE
    ("image_dfl.dcm", ["-xd"]),  # Deflated
    ("SC_rgb_jpeg_dcmtk.dcm", ["-xy"]),  # JPEG baseline, colour
    ("JPEG-lossy.dcm", ["-xx"]),  # JPEG extended
    ("JPEG-LL.dcm", ["-xs"]),  # JPEG lossless SV1
    ("MR_small_jpeg_ls_lossless.dcm", ["-xt"]),  # JPEG-LS lossless
    ("MR_small_jp2klossless.dcm", ["-xv"]),  # J2K lossless
    ("JPEG2000.dcm", ["-xw"]),  # J2K
    ("MR_small_RLE.dcm", ["-xr"]),  # RLE
    ("emri_small.dcm", []),  # multi-frame Enhanced MR
    ("color3d_jpeg_baseline.dcm", ["-xy"]),  # multi-frame colour JPEG
    ("test-SR.dcm", []),  # SR
    ("rtplan.dcm", ["-xi"]),  # non-image
]

#: Files storescu sends exactly as they are on disk (checked against the file too).
UNCHANGED_BY_STORESCU = {"MR_small_bigendian.dcm", "MR_small_implicit.dcm", "rtplan.dcm"}


def _sample(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not in the offline pydicom test data")
    return Path(path)


def _pdf_file(folder: Path) -> Path:
    """A small Encapsulated PDF instance (no PDF sample ships with pydicom)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = EncapsulatedPDFStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = EncapsulatedPDFStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Pdf^Patient"
    ds.PatientID = "PDF1"
    ds.Modality = "DOC"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    path = folder / "doc.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_echo_shows_our_implementation(home):
    with running_server(home) as (_, port, _):
        result = dcmtk("echoscu", "-d", "-aec", AET, "127.0.0.1", str(port))
    assert result.returncode == 0, result.stderr
    log = result.stdout + result.stderr
    assert IMPLEMENTATION_CLASS_UID in log
    assert IMPLEMENTATION_VERSION_NAME in log


def test_called_ae_must_match(home):
    with running_server(home) as (_, port, _):
        result = dcmtk("echoscu", "-aec", "SOMEONE", "-to", "5", "127.0.0.1", str(port))
        assert result.returncode != 0
        assert "Called AE Title Not Recognized" in result.stdout + result.stderr
        assert echo(port).returncode == 0


@pytest.fixture(scope="module")
def reference_scp(tmp_path_factory):
    """A bit-preserving DCMTK storescp: what storescu really puts on the wire.

    storescu rewrites some files as it sends them (drops trailing padding,
    fixes VRs and sequence lengths, re-deflates), so the reference for
    "stored as received" is DCMTK's own bit-preserving receiver.
    """
    binary = require("storescp")
    port = free_port()
    out = tmp_path_factory.mktemp("reference")
    proc = subprocess.Popen(
        [binary, "-aet", "REF", "+xa", "+B", "-od", str(out), str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port, out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize(("name", "options"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_store_is_byte_exact(home, name, options, reference_scp):
    source = _sample(name)
    original = pydicom.dcmread(source, stop_before_pixels=True)
    ref_port, ref_dir = reference_scp
    with running_server(home) as (_, port, cache):
        result = dcmtk("storescu", *options, "-aec", AET, "127.0.0.1", str(port), str(source))
        assert result.returncode == 0, result.stdout + result.stderr
        record = cache.instance(original.SOPInstanceUID)
    assert record is not None
    assert record.transfer_syntax_uid == original.file_meta.TransferSyntaxUID
    result = dcmtk("storescu", *options, "-aec", "REF", "127.0.0.1", str(ref_port), str(source))
    assert result.returncode == 0, result.stdout + result.stderr
    (reference,) = [p for p in ref_dir.iterdir() if p.name.endswith(str(original.SOPInstanceUID))]
    assert dataset_bytes(record.path) == dataset_bytes(reference)
    if name in UNCHANGED_BY_STORESCU:
        assert dataset_bytes(record.path) == dataset_bytes(source)


def test_association_threads_close_their_index_connections(home, tmp_path):
    files = write_series(tmp_path / "src", 2)
    with running_server(home) as (_, port, cache):
        for _ in range(3):
            result = dcmtk("storescu", "-aec", AET, "127.0.0.1", str(port), *map(str, files))
            assert result.returncode == 0, result.stderr
            _, _ = _find(port, "STUDY", "PatientID"), echo(port)
        deadline = time.monotonic() + 5
        while cache.index.open_count() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cache.index.open_count() <= 1  # at most this thread's own connection


def test_store_encapsulated_pdf_and_events(home, tmp_path):
    source = _pdf_file(tmp_path)
    seen: list[str] = []

    def on_stored(event):
        seen.append(event.info.sop_instance_uid)

    ev.bus.bind(ev.INSTANCE_STORED, on_stored)
    try:
        with running_server(home) as (_, port, cache):
            result = dcmtk("storescu", "-aec", AET, "127.0.0.1", str(port), str(source))
            assert result.returncode == 0, result.stderr
            uid = pydicom.dcmread(source).SOPInstanceUID
            record = cache.instance(uid)
    finally:
        ev.bus.unbind(ev.INSTANCE_STORED, on_stored)
    assert seen == [uid]
    assert dataset_bytes(record.path) == dataset_bytes(source)


def test_association_events_and_state(home):
    events: list[tuple[str, int]] = []
    states = []

    def on_event(event):
        events.append((event.type.name, event.associations))

    ev.bus.bind(ev.ASSOCIATION_OPENED, on_event)
    ev.bus.bind(ev.ASSOCIATION_CLOSED, on_event)
    ev.bus.bind(ev.SERVER_STATE, lambda e: states.append(e.state))
    try:
        with running_server(home) as (scp, port, _):
            assert scp.state.running and scp.state.port == port and scp.state.ae_title == AET
            assert echo(port).returncode == 0
            deadline = time.monotonic() + 5
            while len(events) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        assert not scp.state.running
    finally:
        ev.bus.unbind(ev.ASSOCIATION_OPENED, on_event)
        ev.bus.unbind(ev.ASSOCIATION_CLOSED, on_event)
    assert events == [("ASSOCIATION_OPENED", 1), ("ASSOCIATION_CLOSED", 0)]
    assert states[0].running and not states[-1].running


def _populate(tmp_path: Path, port: int) -> dict[str, list[Path]]:
    """Three studies: two for Smith (different dates), one for Jones."""
    studies = {
        "a": write_series(
            tmp_path / "a",
            3,
            patient_name="Smith^John",
            patient_id="P1",
            study_date="20240105",
            accession="ACC-A",
        ),
        "b": write_series(
            tmp_path / "b",
            2,
            patient_name="Smith^Jane",
            patient_id="P2",
            study_date="20240320",
            accession="ACC-B",
            modality="MR",
        ),
        "c": write_series(
            tmp_path / "c",
            1,
            patient_name="Jones^Ann",
            patient_id="P3",
            study_date="20231111",
            accession="ACC-C",
        ),
    }
    files = [str(p) for paths in studies.values() for p in paths]
    result = dcmtk("storescu", "-aec", AET, "127.0.0.1", str(port), *files)
    assert result.returncode == 0, result.stderr
    return studies


def _find(port: int, level: str, *keys: str) -> list[dict[str, str]]:
    """Run findscu and parse its responses into {keyword: value} dicts."""
    args = ["findscu", "-S", "-v", "-aec", AET, "-k", f"QueryRetrieveLevel={level}"]
    for key in keys:
        args += ["-k", key]
    result = dcmtk(*args, "127.0.0.1", str(port))
    assert result.returncode == 0, result.stdout + result.stderr
    answers: list[dict[str, str]] = []
    current = None
    for line in (result.stdout + result.stderr).splitlines():
        if "Find Response:" in line and "Pending" in line:
            current = {}
            answers.append(current)
        elif current is not None and line.startswith("I: (") and "#" in line:
            keyword = line.rsplit(None, 1)[-1]
            value = (
                line.split("[", 1)[1].split("]", 1)[0].strip("\x00 ")
                if "[" in line.split("#")[0]
                else ""
            )
            current[keyword] = value
        elif "Final Find Response" in line:
            current = None
    return answers


def _uid(path: Path, keyword: str) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True)[keyword].value)


def test_find_study_series_image(home, tmp_path):
    with running_server(home) as (_, port, _):
        studies = _populate(tmp_path, port)
        smith = _find(
            port,
            "STUDY",
            "PatientName=smith*",
            "StudyInstanceUID",
            "NumberOfStudyRelatedInstances",
            "ModalitiesInStudy",
            "StudyDate",
        )
        assert sorted(a["PatientName"] for a in smith) == ["Smith^Jane", "Smith^John"]
        counts = {a["PatientName"]: a["NumberOfStudyRelatedInstances"] for a in smith}
        assert counts == {"Smith^John": "3", "Smith^Jane": "2"}

        ranged = _find(
            port, "STUDY", "StudyDate=20240101-20240131", "PatientName", "StudyInstanceUID"
        )
        assert [a["PatientName"] for a in ranged] == ["Smith^John"]
        open_range = _find(port, "STUDY", "StudyDate=-20231231", "PatientID")
        assert [a["PatientID"] for a in open_range] == ["P3"]

        uid_a, uid_c = (
            _uid(studies["a"][0], "StudyInstanceUID"),
            _uid(studies["c"][0], "StudyInstanceUID"),
        )
        listed = _find(port, "STUDY", f"StudyInstanceUID={uid_a}\\{uid_c}", "PatientID")
        assert sorted(a["PatientID"] for a in listed) == ["P1", "P3"]

        series = _find(
            port,
            "SERIES",
            f"StudyInstanceUID={uid_a}",
            "SeriesInstanceUID",
            "Modality",
            "NumberOfSeriesRelatedInstances",
        )
        assert len(series) == 1
        assert series[0]["SeriesInstanceUID"] == _uid(studies["a"][0], "SeriesInstanceUID")
        assert series[0]["NumberOfSeriesRelatedInstances"] == "3"

        series_uid = series[0]["SeriesInstanceUID"]
        images = _find(
            port,
            "IMAGE",
            f"StudyInstanceUID={uid_a}",
            f"SeriesInstanceUID={series_uid}",
            "SOPInstanceUID",
            "InstanceNumber",
            "SOPClassUID",
        )
        assert sorted(a["SOPInstanceUID"] for a in images) == sorted(
            _uid(p, "SOPInstanceUID") for p in studies["a"]
        )
        assert sorted(int(a["InstanceNumber"]) for a in images) == [1, 2, 3]

        nothing = _find(port, "STUDY", "PatientName=Nobody*")
        assert nothing == []


@pytest.fixture
def storescp(tmp_path):
    """A DCMTK storescp as a C-MOVE destination."""
    binary = require("storescp")
    port = free_port()
    out = tmp_path / "dest"
    out.mkdir()
    proc = subprocess.Popen(
        [binary, "-aet", "DEST", "-od", str(out), str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield port, out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_move_to_storescp_and_unknown_destination(home, tmp_path, storescp):
    dest_port, dest_dir = storescp
    node = Node(name="dest", ae_title="DEST", host="127.0.0.1", port=dest_port, roles=["send"])
    with running_server(home, nodes=[node]) as (_, port, _):
        studies = _populate(tmp_path, port)
        uid_a = _uid(studies["a"][0], "StudyInstanceUID")
        result = dcmtk(
            "movescu",
            "-S",
            "-d",
            "-aec",
            AET,
            "-aem",
            "DEST",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={uid_a}",
            "127.0.0.1",
            str(port),
        )
        assert result.returncode == 0, result.stdout + result.stderr
        log = result.stdout + result.stderr
        assert log.count("Remaining Suboperations") >= 4  # 3 pending + final
        assert "Completed Suboperations       : 3" in log
        received = sorted(dest_dir.iterdir())
        assert len(received) == 3
        sent = {dataset_bytes(p) for p in studies["a"]}
        assert {dataset_bytes(p) for p in received} == sent

        unknown = dcmtk(
            "movescu",
            "-S",
            "-v",
            "-aec",
            AET,
            "-aem",
            "NOWHERE",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={uid_a}",
            "127.0.0.1",
            str(port),
        )
        assert "Refused: MoveDestinationUnknown" in unknown.stdout + unknown.stderr  # 0xA801


def test_move_with_a_failed_sub_operation_ends_b000(home, tmp_path, storescp):
    dest_port, dest_dir = storescp
    node = Node(name="dest", ae_title="DEST", host="127.0.0.1", port=dest_port, roles=["send"])
    with running_server(home, nodes=[node]) as (_, port, cache):
        studies = _populate(tmp_path, port)
        uid_a = _uid(studies["a"][0], "StudyInstanceUID")
        lost = cache.instances(study_uid=uid_a)[0]
        lost.path.write_bytes(b"not DICOM any more")
        result = dcmtk("movescu", "-S", "-d", "-aec", AET, "-aem", "DEST",
                       "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={uid_a}",
                       "127.0.0.1", str(port))
        log = result.stdout + result.stderr
        assert "Completed Suboperations       : 2" in log
        assert "Failed Suboperations          : 1" in log
        assert "0xb000" in log.lower()
        assert len(list(dest_dir.iterdir())) == 2


def test_port_busy_raises_network_error(home):
    with running_server(home) as (_, port, cache):
        config = make_config(home, port=port)
        second = Server(home, config, cache)
        from gearview.errors import NetworkError

        with pytest.raises(NetworkError, match="already in use"):
            second.start()
        assert second.state.last_error
        assert not second.state.running


def test_serve_cli_prints_port_and_stops_on_sigterm(home, tmp_path):
    gearview = shutil.which("gearview", path=str(Path(__file__).parents[2] / ".venv" / "bin"))
    if gearview is None:
        pytest.skip("the gearview entry point is not installed in .venv")
    proc = subprocess.Popen(
        [gearview, "serve", "--port", "0", "--aet", "CLISCP", "--bind", "127.0.0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening on CLISCP@127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        result = dcmtk("echoscu", "-aec", "CLISCP", "127.0.0.1", str(port))
        assert result.returncode == 0
        busy = subprocess.run(
            [gearview, "serve", "--port", str(port)], capture_output=True, text=True, timeout=30
        )
        assert busy.returncode == 1
        assert busy.stderr.count("\n") == 1 and "already in use" in busy.stderr
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


def test_restart_applies_a_new_configuration(home):
    with running_server(home) as (scp, port, _):
        config = make_config(home, ae_title="RENAMED")
        scp.restart(config)
        state = scp.state
        assert state.running and state.ae_title == "RENAMED" and state.port != 0
        result = dcmtk("echoscu", "-aec", "RENAMED", "127.0.0.1", str(state.port))
        assert result.returncode == 0, result.stderr
        assert dcmtk("echoscu", "-aec", AET, "127.0.0.1", str(state.port)).returncode != 0
