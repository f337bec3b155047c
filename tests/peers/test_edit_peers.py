"""An edited study as real peers see it: Orthanc after a send, storescp after storescu,
and DCMTK findscu against gearview's own C-FIND SCP."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from edit_fixtures import add_mixed_study
from pydicom import dcmread

from gearview.config import load_config
from gearview.conformance import UNCOMPRESSED
from gearview.edit.study_edit import edit_study
from gearview.net.send import items_for, send_items
from peers.orthanc import orthanc_with
from peers.storescp import StoreSCP
from peers.tools import DCMTK_ENV, free_port, require

pytestmark = pytest.mark.peers
NEW = {
    "PatientName": "Edited^Patient",
    "PatientID": "EDIT-1",
    "AccessionNumber": "ACC-EDIT",
    "PatientBirthDate": "19650412",
    "PatientSex": "F",
}


def test_edited_study_sent_to_orthanc_shows_new_demographics(home, cache, tmp_path: Path) -> None:
    study = add_mixed_study(cache, tmp_path / "src", ct_slices=2)
    edit_study(cache, study, NEW, reason="peer test")
    peer = orthanc_with(tmp_path / "orthanc")
    try:
        result = send_items(peer.node(), load_config(home), items_for(cache, [study]))
        assert result.ok, result
        found = peer.rest(
            "/tools/find", {"Level": "Study", "Query": {"StudyInstanceUID": study}, "Expand": True}
        )
        assert len(found) == 1
        patient = found[0]["PatientMainDicomTags"]
        assert (patient["PatientName"], patient["PatientID"]) == ("Edited^Patient", "EDIT-1")
        assert found[0]["MainDicomTags"]["AccessionNumber"] == "ACC-EDIT"
        instances = peer.rest(
            "/tools/find", {"Level": "Instance", "Query": {"StudyInstanceUID": study}}
        )
        assert len(instances) == len(cache.instances(study_uid=study))
        for orthanc_id in instances:
            tags = peer.rest(f"/instances/{orthanc_id}/simplified-tags")
            assert (
                tags["PatientName"] == "Edited^Patient" and tags["PatientBirthDate"] == "19650412"
            )
    finally:
        peer.stop()


def test_cache_files_sent_with_storescu_to_storescp(cache, tmp_path: Path) -> None:
    storescu = require("storescu")
    study = add_mixed_study(cache, tmp_path / "src", ct_slices=2)
    edit_study(cache, study, NEW)
    # storescu 3.6.7 -R will not offer compressed files as they are (it tries to decompress);
    # the compressed and multi-frame ones are checked in Orthanc after gearview's own send
    files = [
        str(i.path)
        for i in cache.instances(study_uid=study)
        if i.transfer_syntax_uid in UNCOMPRESSED
    ]
    assert len(files) >= 4
    with StoreSCP(tmp_path / "received", extra=["+xa"]) as scp:
        for path in files:  # one association each: storescu -R proposes one syntax per SOP class
            proc = subprocess.run(
                [storescu, "-R", "-aec", scp.aet, "127.0.0.1", str(scp.port), path],
                env=DCMTK_ENV,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, proc.stderr
        received = list(scp.out.iterdir())
    assert len(received) == len(files)
    for path in received:
        dump = subprocess.run(
            ["dcmdump", "-q", "+P", "PatientName", "+P", "PatientID", str(path)],
            capture_output=True,
            text=True,
            check=True,
            env=DCMTK_ENV,
        ).stdout
        assert "[Edited^Patient]" in dump and "[EDIT-1]" in dump
        assert dcmread(path).OriginalAttributesSequence


def test_cfind_on_our_server_shows_new_values(station, cache, tmp_path: Path) -> None:
    findscu = require("findscu")
    study = add_mixed_study(cache, tmp_path / "src", ct_slices=1)
    edit_study(cache, study, NEW)
    config = station.config
    config.server.port = free_port()
    station.start_server()
    try:
        out = tmp_path / "rsp"
        out.mkdir()
        subprocess.run(
            [
                findscu,
                "-S",
                "-aec",
                config.server.ae_title,
                "-X",
                "-od",
                str(out),
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={study}",
                "-k",
                "PatientName",
                "-k",
                "PatientID",
                "-k",
                "AccessionNumber",
                "-k",
                "PatientBirthDate",
                "127.0.0.1",
                str(config.server.port),
            ],
            env=DCMTK_ENV,
            check=True,
            capture_output=True,
            timeout=60,
        )
    finally:
        station.stop_server()
    (answer,) = [dcmread(p) for p in out.iterdir()]
    assert str(answer.PatientName) == "Edited^Patient"
    assert (answer.PatientID, answer.AccessionNumber, answer.PatientBirthDate) == (
        "EDIT-1",
        "ACC-EDIT",
        "19650412",
    )
