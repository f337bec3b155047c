"""C-ECHO and C-FIND against real Orthancs (two nodes, an overlapping study, a node down)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factory import write_series
from pydicom.uid import generate_uid

from gearview.cli import main
from gearview.config import Config, Node, save_config
from gearview.errors import NetworkError
from gearview.net import client
from gearview.net.query import StudyQuery
from peers.orthanc import orthanc_with
from peers.tools import free_port

pytestmark = pytest.mark.peers

S1, S2, S3, S4 = (generate_uid() for _ in range(4))


@pytest.fixture(scope="module")
def pacs_pair(tmp_path_factory: pytest.TempPathFactory):
    """PACS1 holds S1, S2, S3; PACS2 holds S2 (overlap) and S4."""
    root = tmp_path_factory.mktemp("find")
    files = {
        S1: write_series(
            root / "s1",
            3,
            study_uid=S1,
            patient_name="Doe^John",
            patient_id="P1",
            accession="A1",
            study_date="20240102",
        ),
        S2: write_series(
            root / "s2",
            2,
            study_uid=S2,
            patient_name="Smith^Anna",
            patient_id="P2",
            accession="A2",
            study_date="20240315",
            modality="MR",
        ),
        S3: write_series(
            root / "s3",
            1,
            study_uid=S3,
            patient_name="Brown^Bob",
            patient_id="P3",
            accession="A3",
            study_date="20231201",
            modality="US",
        ),
        S4: write_series(
            root / "s4",
            2,
            study_uid=S4,
            patient_name="Doe^Jane",
            patient_id="P4",
            accession="A4",
            study_date="20240103",
        ),
    }
    first = orthanc_with(root / "o1", [files[S1], files[S2], files[S3]], aet="PACS1")
    try:
        second = orthanc_with(root / "o2", [files[S2], files[S4]], aet="PACS2")
    except Exception:
        first.stop()
        raise
    yield first, second
    first.stop()
    second.stop()


def _uids(studies) -> set[str]:
    return {s.study_instance_uid for s in studies}


def test_echo_round_trip(pacs_pair):
    seconds = client.echo(pacs_pair[0].node("PACS1"), Config())
    assert 0 < seconds < 10


def test_echo_refused_port_is_readable():
    node = Node("DOWN", "NOBODY", "127.0.0.1", free_port(), timeout=3)
    with pytest.raises(NetworkError, match="refused the connection"):
        client.echo(node, Config())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (StudyQuery(patient_name="doe*"), {S1}),
        (StudyQuery(patient_name="Sm?th^Anna"), {S2}),
        (StudyQuery(patient_id="P2"), {S2}),
        (StudyQuery(accession_number="A3"), {S3}),
        (StudyQuery(study_date="20240101-20240131"), {S1}),
        (StudyQuery(study_date="-20231231"), {S3}),
        (StudyQuery(study_date="20240102"), {S1}),
        (StudyQuery(modalities_in_study="MR"), {S2}),
        (StudyQuery(), {S1, S2, S3}),
    ],
)
def test_find_matching(pacs_pair, query, expected):
    studies = client.find_studies(pacs_pair[0].node("PACS1"), Config(), query)
    assert _uids(studies) == expected


def test_find_returns_spec_keys(pacs_pair):
    (study,) = client.find_studies(
        pacs_pair[0].node("PACS1"), Config(), StudyQuery(patient_id="P1")
    )
    assert (
        study.patient_name, study.accession_number, study.study_date, study.modalities_in_study
    ) == (
        "Doe^John",
        "A1",
        "20240102",
        ["CT"],
    )
    assert study.number_of_study_related_instances == 3
    assert (study.number_of_study_related_series, study.sources) == (1, ["PACS1"])


def test_drill_down_series_and_images(pacs_pair):
    node, config = pacs_pair[0].node("PACS1"), Config()
    (series,) = client.find_series(node, config, S1)
    images = client.find_images(node, config, S1, series.SeriesInstanceUID)
    assert len(images) == 3 and all(i.SOPInstanceUID for i in images)


def test_two_nodes_merged_with_sources(pacs_pair):
    nodes = [pacs_pair[0].node("PACS1"), pacs_pair[1].node("PACS2")]
    result = client.find_on_nodes(nodes, Config(), StudyQuery())
    assert not result.errors
    by_uid = {s.study_instance_uid: s for s in result.studies}
    assert set(by_uid) == {S1, S2, S3, S4}
    assert sorted(by_uid[S2].sources) == ["PACS1", "PACS2"]
    assert by_uid[S4].sources == ["PACS2"]


def test_node_down_is_reported_beside_results(pacs_pair):
    down = Node("DOWN", "NOBODY", "127.0.0.1", free_port(), timeout=3)
    result = client.find_on_nodes(
        [pacs_pair[0].node("PACS1"), down], Config(), StudyQuery(patient_name="DOE*")
    )
    assert _uids(result.studies) == {S1}
    assert "DOWN" in result.errors and "refused" in result.errors["DOWN"]


def test_unregistered_station_is_told_why(pacs_pair, tmp_path: Path):
    """Orthanc refuses C-FIND from an AE it does not know: the error says so."""
    config = Config()
    config.server.ae_title = "STRANGER"
    with pytest.raises(NetworkError, match="aborted|rejected"):
        client.find_studies(pacs_pair[0].node("PACS1"), config, StudyQuery())


def _configure(home, pacs_pair) -> None:
    config = Config()
    config.nodes = [pacs_pair[0].node("PACS1"), pacs_pair[1].node("PACS2")]
    save_config(home, config)


def test_cli_find_json_has_sources(home, pacs_pair, capsys):
    _configure(home, pacs_pair)
    assert main(["find", "PACS1", "PACS2", "--patient-name", "*", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_uid = {r["study_uid"]: r for r in rows}
    assert sorted(by_uid[S2]["sources"]) == ["PACS1", "PACS2"]
    assert by_uid[S1]["modalities"] == ["CT"] and by_uid[S1]["instances"] == 3


def test_cli_find_table_and_echo(home, pacs_pair, capsys):
    _configure(home, pacs_pair)
    assert main(["find", "PACS2", "--modality", "CT"]) == 0
    out = capsys.readouterr().out
    assert "Doe^Jane" in out and "Smith" not in out
    assert main(["echo", "PACS1"]) == 0
    assert "C-ECHO OK" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["echo", "NOSUCH"], "unknown node"),
        (["find", "NOSUCH"], "unknown node"),
        (["find", "PACS1", "--study-date", "2024-01"], "not a date"),
    ],
)
def test_cli_one_line_errors(home, pacs_pair, capsys, argv, message):
    _configure(home, pacs_pair)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err


def test_cli_refused_association(home, capsys):
    port = free_port()
    assert main(["echo", f"NOBODY@127.0.0.1:{port}"]) == 5
    err = capsys.readouterr().err.strip()
    assert "refused" in err and "\n" not in err
