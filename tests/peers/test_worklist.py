"""Modality Worklist C-FIND against DCMTK `wlmscpfs` with worklist files made here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gearview.cli import main
from gearview.config import Config, load_config, save_config
from gearview.errors import InvalidValueError, NetworkError, NotFoundError
from gearview.net.worklist import WorklistQuery, find_order, find_worklist
from peers.tools import free_port
from peers.worklist import WorklistSCP, order

pytestmark = pytest.mark.peers

LATIN1_NAME = "Müller^Jürgen"
JAPANESE_NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"
#: SPEC §3 `worklist --json` keys.
SPEC_KEYS = (
    "patient_name",
    "patient_id",
    "issuer_of_patient_id",
    "birth_date",
    "sex",
    "accession",
    "requested_procedure_id",
    "requested_procedure_description",
    "scheduled_date",
    "modality",
    "study_uid",
)


@pytest.fixture(scope="module")
def ris(tmp_path_factory: pytest.TempPathFactory):
    scp = WorklistSCP(tmp_path_factory.mktemp("wlm"))
    scp.add(order("A100", LATIN1_NAME, "L100", scheduled_date="20240301", sex="M"))
    scp.add(
        order(
            "A200",
            JAPANESE_NAME,
            "L200",
            scheduled_date="20240302",
            charset=["", "ISO 2022 IR 87"],
        )
    )
    scp.add(order("A300", "Doe^John", "L300", scheduled_date="20240310", modality="MR", charset=""))
    scp.add(order("A301", "Doe^Jane", "L301", scheduled_date="20240415", charset=""))
    with scp:
        yield scp


def _accessions(items) -> list[str]:
    return [i.accession for i in items]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (WorklistQuery(patient_name="Doe*"), ["A300", "A301"]),
        (WorklistQuery(patient_name="Doe^J?ne"), ["A301"]),
        (WorklistQuery(accession="A200"), ["A200"]),
        (WorklistQuery(patient_id="L100"), ["A100"]),
        (WorklistQuery(scheduled_date="20240302"), ["A200"]),
        (WorklistQuery(scheduled_date="20240302-20240331"), ["A200", "A300"]),
        (WorklistQuery(scheduled_date="20240401-"), ["A301"]),
        (WorklistQuery(modality="MR"), ["A300"]),
        (WorklistQuery(), ["A100", "A200", "A300", "A301"]),
    ],
)
def test_worklist_matching(ris, query, expected):
    assert _accessions(find_worklist(ris.node(), Config(), query)) == expected


def test_item_has_every_key(ris):
    (item,) = find_worklist(ris.node(), Config(), WorklistQuery(accession="A300"))
    assert item.to_json() == {
        "patient_name": "Doe^John",
        "patient_id": "L300",
        "issuer_of_patient_id": "LOCALHOSP",
        "birth_date": "19800214",
        "sex": "F",
        "accession": "A300",
        "requested_procedure_id": "RPA300",
        "requested_procedure_description": "CT chest with contrast",
        "scheduled_date": "20240310",
        "modality": "MR",
        "study_uid": item.study_uid,
    }
    assert item.study_uid.count(".") > 3 and item.source == "RIS" and not item.warnings


def test_each_answer_decoded_with_its_own_character_set(ris):
    """One query returns a Latin-1 and an ISO 2022 Japanese order: both names read right."""
    items = {i.accession: i for i in find_worklist(ris.node(), Config(), WorklistQuery())}
    assert items["A100"].patient_name == LATIN1_NAME
    assert items["A200"].patient_name == JAPANESE_NAME
    assert not items["A100"].warnings and not items["A200"].warnings


def test_find_order_by_accession(ris):
    item = find_order([ris.node()], Config(), "A100")
    assert (item.patient_id, item.patient_name, item.sex) == ("L100", LATIN1_NAME, "M")
    with pytest.raises(NotFoundError, match="no order with accession 'NOPE'"):
        find_order([ris.node()], Config(), "NOPE")


@pytest.mark.parametrize(
    "query",
    [
        WorklistQuery(scheduled_date="2024-03-01"),
        WorklistQuery(modality="C T"),
        WorklistQuery(patient_id="a\\b"),
        WorklistQuery(accession="A" * 17),
    ],
)
def test_bad_query_refused_before_any_network(query):
    with pytest.raises(InvalidValueError):
        query.validate()


def _configure(home, ris) -> None:
    config = load_config(home)
    config.nodes = [ris.node()]
    save_config(home, config)


def test_cli_worklist_json(home, ris, capsys):
    _configure(home, ris)
    assert main(["worklist", "RIS", "--date", "20240301-20240302", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["accession"] for r in rows] == ["A100", "A200"]
    assert rows[1]["patient_name"] == JAPANESE_NAME
    assert sorted(rows[0]) == sorted(SPEC_KEYS)


def test_cli_worklist_table(home, ris, capsys):
    _configure(home, ris)
    assert main(["worklist", "RIS", "--patient-name", "Doe*", "--modality", "MR"]) == 0
    out = capsys.readouterr().out
    assert "Doe^John" in out and "A300" in out and "Jane" not in out


def test_cli_worklist_node_down_exit_5(home):
    """Run as a user would: exit 5 and one line on stderr, no library log lines."""
    done = subprocess.run(
        [sys.executable, "-m", "gearview", "worklist", f"WLM@127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 5
    assert done.stderr.count("\n") == 1 and "refused the connection" in done.stderr
    assert done.stderr.startswith("gearview: error: ") and not done.stdout


def test_cli_worklist_bad_date_exit_1(home, ris, capsys):
    _configure(home, ris)
    assert main(["worklist", "RIS", "--date", "March"]) == 1
    err = capsys.readouterr().err.strip()
    assert "scheduled date" in err and "\n" not in err


def test_node_without_worklist_service_is_named(tmp_path):
    """A storage-only peer (storescp) refuses the worklist context: the error says what."""
    from peers.storescp import StoreSCP

    with StoreSCP(tmp_path / "out") as scp:
        with pytest.raises(NetworkError, match="Modality Worklist"):
            find_worklist(scp.node(), Config(), WorklistQuery())
