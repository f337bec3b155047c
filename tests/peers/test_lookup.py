"""Patient lookup against real peers: Orthanc as a `query` node, wlmscpfs as the worklist."""

from __future__ import annotations

import pytest
from factory import write_series

from gearview.config import Config, Node
from gearview.identity.lookup import PatientIdentity, find_by_id, find_candidates
from peers.orthanc import orthanc_with
from peers.tools import free_port
from peers.worklist import WorklistSCP, order

pytestmark = pytest.mark.peers

OUTSIDE = PatientIdentity("EXT-1", "OUTSIDE_HOSP", "MULLER^JURGEN", "19800214", "M")


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("lookup")
    local = write_series(
        root / "local",
        2,
        patient_name="Müller^Jürgen",
        patient_id="MRN-1",
        issuer="LOCALHOSP",
        birth_date="19800214",
        sex="M",
    )
    namesake = write_series(
        root / "other",
        1,
        patient_name="Müller^Jürgen",
        patient_id="MRN-7",
        birth_date="19511224",
        sex="M",
    )
    peer = orthanc_with(root / "orthanc", [local, namesake], aet="PACS1")
    yield peer
    peer.stop()


@pytest.fixture(scope="module")
def ris(tmp_path_factory: pytest.TempPathFactory):
    scp = WorklistSCP(tmp_path_factory.mktemp("ris"))
    scp.add(order("ACC-1", "Müller^Jürgen", "MRN-1", birth_date="19800214", sex="M"))
    scp.add(order("ACC-2", "Schmidt^Anna", "MRN-4", birth_date="19800214", sex="F"))
    with scp:
        yield scp


def test_orthanc_lookup_finds_the_local_patient_by_name_and_birth_date(pacs):
    result = find_candidates(OUTSIDE, None, Config(), query_nodes=[pacs.node("PACS1")])
    assert not result.errors
    (candidate,) = result.candidates  # the namesake born 1951 is not one
    assert candidate.identity == PatientIdentity(
        "MRN-1", "LOCALHOSP", "Müller^Jürgen", "19800214", "M"
    )
    assert candidate.source == "PACS1" and candidate.studies == 1
    assert "accents" in candidate.reason and "same birth date" in candidate.reason


def test_worklist_orders_are_candidates_too(pacs, ris):
    down = Node("DOWN", "NOBODY", "127.0.0.1", free_port(), roles=["query"], timeout=3)
    result = find_candidates(
        OUTSIDE,
        None,
        Config(),
        query_nodes=[pacs.node("PACS1"), down],
        worklist_nodes=[ris.node()],
    )
    assert [(c.identity.patient_id, c.source) for c in result.candidates] == [
        ("MRN-1", "worklist RIS"),
        ("MRN-1", "PACS1"),
    ]
    assert result.candidates[0].order.accession == "ACC-1"
    assert "refused" in result.errors["DOWN"]


def test_pacs_record_by_id(pacs):
    identity, source, warnings = find_by_id(
        None, "MRN-1", "LOCALHOSP", Config(), [pacs.node("PACS1")]
    )
    assert identity == PatientIdentity("MRN-1", "LOCALHOSP", "Müller^Jürgen", "19800214", "M")
    assert source == "PACS1" and not warnings
