"""Patient lookup in the cache: fuzzy names, exact birth dates, ranked with reasons; mappings."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from factory import write_series

from gearview.config import Config
from gearview.identity import mappings
from gearview.identity.lookup import PatientIdentity, find_by_id, find_candidates, score
from gearview.identity.names import compare_names
from gearview.store import Cache


@pytest.mark.parametrize(
    ("outside", "local", "reason"),
    [
        ("Müller^Jürgen", "Müller^Jürgen", "same name"),
        ("MULLER^JURGEN", "Müller^Jürgen", "apart from case, accents"),
        ("Jürgen^Müller", "Müller^Jürgen", "another order"),
        ("MULLER JURGEN", "Müller^Jürgen", "another order"),
        ("Nørgaard^Søren", "NORGAARD^SOREN", "apart from case, accents"),
        ("Müller^J", "Müller^Jürgen", "abbreviated"),
        ("Müller", "Müller^Jürgen", "abbreviated"),
        ("Mueller^Juergen", "Müller^Jürgen", "similar spelling"),
        ("Yamada^Tarou=山田^太郎", "YAMADA^TAROU", "apart from case"),
    ],
)
def test_names_match_with_the_reason(outside: str, local: str, reason: str) -> None:
    match = compare_names(outside, local)
    assert match is not None and reason in match.reason


@pytest.mark.parametrize(
    ("outside", "local"),
    [("Müller^Jürgen", "Miller^Anna"), ("Doe^John", "Smith^John"), ("", "Doe^John")],
)
def test_different_names_do_not_match(outside: str, local: str) -> None:
    assert compare_names(outside, local) is None


def test_ranking_follows_the_strength_of_the_match() -> None:
    outside = PatientIdentity("EXT-1", "OUTSIDE", "MULLER^JURGEN", "19800214", "M")
    exact = score(outside, PatientIdentity("L1", "", "Muller^Jurgen", "19800214", "M"))
    reordered = score(outside, PatientIdentity("L2", "", "Jurgen^Muller", "19800214", "M"))
    other_sex = score(outside, PatientIdentity("L3", "", "Muller^Jurgen", "19800214", "F"))
    assert exact and reordered and other_sex
    assert exact[0] > reordered[0] > other_sex[0]
    assert "sex differs (outside M, here F)" in other_sex[1]
    assert score(outside, PatientIdentity("L4", "", "Muller^Jurgen", "19800215", "M")) is None


@pytest.fixture
def local_patients(cache: Cache, tmp_path: Path) -> Cache:
    """The cache knows Müller^Jürgen (two records differ only in their ID) and others."""
    for folder, name, pid, birth, sex in (
        ("a", "Müller^Jürgen", "MRN-1", "19800214", "M"),
        ("b", "Jürgen^Müller", "MRN-2", "19800214", "M"),
        ("c", "Müller^Jürgen", "MRN-3", "19800215", "M"),
        ("d", "Schmidt^Anna", "MRN-4", "19800214", "F"),
    ):
        for path in write_series(
            tmp_path / folder, 1, patient_name=name, patient_id=pid, birth_date=birth, sex=sex
        ):
            cache.add_file(path)
    return cache


def test_cache_lookup_ranks_candidates_with_reasons(local_patients: Cache) -> None:
    outside = PatientIdentity("EXT-1", "OUTSIDE", "MULLER^JURGEN", "19800214", "M")
    result = find_candidates(outside, local_patients.conn, Config())
    assert [c.identity.patient_id for c in result.candidates] == ["MRN-1", "MRN-2"]
    first = result.candidates[0]
    assert first.source == "cache" and first.studies == 1
    assert "same birth date" in first.reason and "accents" in first.reason
    assert "another order" in result.candidates[1].reason
    assert not result.errors


def test_lookup_by_id_takes_the_cached_demographics(local_patients: Cache) -> None:
    identity, source, warnings = find_by_id(local_patients.conn, "MRN-4", "", Config())
    assert identity == PatientIdentity("MRN-4", "", "Schmidt^Anna", "19800214", "F")
    assert source == "cache" and not warnings
    assert find_by_id(local_patients.conn, "NOBODY", "", Config()) == (None, "", [])


def test_mapping_remembered_per_outside_issuer(home) -> None:
    outside = PatientIdentity("12345", "HOSP_A", "Doe^John")
    local = PatientIdentity("MRN-9", "LOCAL", "Doe^John", "19700101", "M")
    assert mappings.remember(home, outside, local)
    candidate = mappings.remembered(home, "12345", "HOSP_A")
    assert candidate is not None and candidate.identity == local
    assert candidate.source == "remembered" and "reconciled to it on" in candidate.reason
    assert mappings.remembered(home, "12345", "HOSP_B") is None
    assert stat.S_IMODE((home.root / mappings.FILE_NAME).stat().st_mode) == 0o600


def test_no_mapping_without_a_hospital(home) -> None:
    """Without issuer or institution two hospitals' '12345' could be confused: not remembered."""
    outside = PatientIdentity("12345", "", "Doe^John")
    assert not mappings.remember(home, outside, PatientIdentity("MRN-9"))
    assert mappings.remember(home, outside, PatientIdentity("MRN-9"), institution="St Elsewhere")
    assert mappings.remembered(home, "12345", "", "St Elsewhere") is not None
    assert mappings.remembered(home, "12345", "") is None


def test_damaged_mapping_file_is_ignored(home) -> None:
    (home.root / mappings.FILE_NAME).write_text("{not json")
    assert mappings.remembered(home, "12345", "HOSP_A") is None
