"""C-FIND / C-MOVE matching on the index (gearview.store.query)."""

from __future__ import annotations

import pytest
from factory import make_ct
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from gearview.errors import InvalidValueError
from gearview.store import query as q


@pytest.fixture
def filled(cache, tmp_path):
    """Three studies: Smith John (CT, 2 series), Smith Jane (MR), Jones (CT, 1999)."""
    specs = [
        dict(
            patient_name="Smith^John",
            patient_id="P1",
            study_date="20240105",
            accession="A1",
            modality="CT",
            series=2,
            per_series=2,
        ),
        dict(
            patient_name="Smith^Jane",
            patient_id="P2",
            study_date="20240320",
            accession="A2",
            modality="MR",
            series=1,
            per_series=3,
        ),
        dict(
            patient_name="Jones^Ann",
            patient_id="P3",
            study_date="19991231",
            accession="A3",
            modality="CT",
            series=1,
            per_series=1,
        ),
    ]
    uids = {}
    for spec in specs:
        study = generate_uid()
        uids[spec["patient_id"]] = {"study": study, "series": [], "sops": []}
        for number in range(1, spec["series"] + 1):
            series = generate_uid()
            uids[spec["patient_id"]]["series"].append(series)
            for index in range(1, spec["per_series"] + 1):
                ds = make_ct(
                    study,
                    series,
                    index,
                    patient_name=spec["patient_name"],
                    patient_id=spec["patient_id"],
                    study_date=spec["study_date"],
                    accession=spec["accession"],
                    modality=spec["modality"],
                    series_number=number,
                )
                path = tmp_path / f"{ds.SOPInstanceUID}.dcm"
                ds.save_as(path, enforce_file_format=True)
                cache.add_file(path)
                uids[spec["patient_id"]]["sops"].append(ds.SOPInstanceUID)
    return uids


def _identifier(level: str, **keys: object) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def _find(cache, level: str, **keys: object) -> list[Dataset]:
    return list(q.find(cache.conn, _identifier(level, **keys)))


def test_universal_match_returns_every_study_with_requested_keys(cache, filled):
    found = _find(
        cache,
        "STUDY",
        PatientName="",
        StudyInstanceUID="",
        NumberOfStudyRelatedInstances="",
        NumberOfStudyRelatedSeries="",
        ModalitiesInStudy="",
    )
    assert len(found) == 3
    by_id = {str(ds.PatientName): ds for ds in found}
    assert by_id["Smith^John"].NumberOfStudyRelatedInstances == 4
    assert by_id["Smith^John"].NumberOfStudyRelatedSeries == 2
    assert (
        list(by_id["Smith^Jane"].ModalitiesInStudy) == ["MR"]
        or by_id["Smith^Jane"].ModalitiesInStudy == "MR"
    )
    assert all(ds.QueryRetrieveLevel == "STUDY" for ds in found)


def test_wildcards_star_and_question_mark(cache, filled):
    assert {str(d.PatientName) for d in _find(cache, "STUDY", PatientName="Smith*")} == {
        "Smith^John",
        "Smith^Jane",
    }
    assert [str(d.PatientName) for d in _find(cache, "STUDY", PatientName="Smith^J?ne")] == [
        "Smith^Jane"
    ]
    assert {str(d.PatientName) for d in _find(cache, "STUDY", PatientName="*")} == {
        "Smith^John",
        "Smith^Jane",
        "Jones^Ann",
    }


def test_person_name_matching_is_case_insensitive_other_strings_are_not(cache, filled):
    assert len(_find(cache, "STUDY", PatientName="smith*")) == 2
    assert len(_find(cache, "STUDY", PatientID="p1")) == 0
    assert len(_find(cache, "STUDY", PatientID="P1")) == 1
    assert len(_find(cache, "STUDY", AccessionNumber="A?")) == 3


def test_wildcard_metacharacters_of_sql_are_literal(cache, filled):
    assert _find(cache, "STUDY", PatientName="Smith%") == []
    assert _find(cache, "STUDY", PatientName="Smith_John") == []
    assert _find(cache, "STUDY", AccessionNumber="[A]1") == []


def test_date_ranges(cache, filled):
    def ids(value: str) -> set[str]:
        return {d.PatientID for d in _find(cache, "STUDY", StudyDate=value, PatientID="")}

    assert ids("20240101-20241231") == {"P1", "P2"}
    assert ids("-20000101") == {"P3"}
    assert ids("20240301-") == {"P2"}
    assert ids("20240105") == {"P1"}
    assert ids("20240106") == set()


def test_list_of_uids(cache, filled):
    wanted = [filled["P1"]["study"], filled["P3"]["study"]]
    found = _find(cache, "STUDY", StudyInstanceUID=wanted)
    assert {d.StudyInstanceUID for d in found} == set(wanted)


def test_series_level_within_a_study(cache, filled):
    study = filled["P1"]["study"]
    found = _find(
        cache,
        "SERIES",
        StudyInstanceUID=study,
        SeriesInstanceUID="",
        Modality="",
        SeriesNumber="",
        NumberOfSeriesRelatedInstances="",
    )
    assert {d.SeriesInstanceUID for d in found} == set(filled["P1"]["series"])
    assert all(d.Modality == "CT" and d.NumberOfSeriesRelatedInstances == 2 for d in found)
    assert sorted(int(d.SeriesNumber) for d in found) == [1, 2]
    assert [d.SeriesInstanceUID for d in _find(cache, "SERIES", Modality="MR")] == filled["P2"][
        "series"
    ]


def test_image_level_and_unknown_keys_returned_empty(cache, filled):
    series = filled["P2"]["series"][0]
    found = _find(
        cache,
        "IMAGE",
        SeriesInstanceUID=series,
        SOPInstanceUID="",
        InstanceNumber="",
        ImageComments="",
    )
    assert {d.SOPInstanceUID for d in found} == set(filled["P2"]["sops"])
    assert sorted(int(d.InstanceNumber) for d in found) == [1, 2, 3]
    assert all("ImageComments" in d and not d.ImageComments for d in found)
    one = _find(cache, "IMAGE", SOPInstanceUID=filled["P2"]["sops"][1], InstanceNumber="")
    assert [int(d.InstanceNumber) for d in one] == [2]


def test_modalities_in_study_matches_any(cache, filled):
    assert {d.PatientID for d in _find(cache, "STUDY", ModalitiesInStudy="MR", PatientID="")} == {
        "P2"
    }
    assert len(_find(cache, "STUDY", ModalitiesInStudy=["MR", "CT"])) == 3


def test_patient_level_and_missing_level_are_refused(cache, filled):
    with pytest.raises(InvalidValueError):
        _find(cache, "PATIENT", PatientID="")
    with pytest.raises(InvalidValueError):
        list(q.find(cache.conn, Dataset()))


def test_move_paths_need_the_unique_key(cache, filled):
    paths = q.instance_paths(
        cache.conn, _identifier("STUDY", StudyInstanceUID=filled["P1"]["study"]), cache.files_dir
    )
    assert {sop for *_, sop in paths} == set(filled["P1"]["sops"])
    assert all(path.is_file() for path, *_ in paths)
    series = q.instance_paths(
        cache.conn,
        _identifier("SERIES", SeriesInstanceUID=filled["P1"]["series"][1]),
        cache.files_dir,
    )
    assert len(series) == 2
    with pytest.raises(InvalidValueError):
        q.instance_paths(cache.conn, _identifier("STUDY", PatientID="P1"), cache.files_dir)


def test_non_ascii_names_come_back_as_utf8(cache, tmp_path):
    ds = make_ct(generate_uid(), generate_uid(), patient_name="Müller^Jürgen")
    ds.SpecificCharacterSet = "ISO_IR 100"
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    cache.add_file(path)
    (found,) = _find(cache, "STUDY", PatientName="m*")
    assert found.SpecificCharacterSet == "ISO_IR 192"
    assert str(found.PatientName) == "Müller^Jürgen"
