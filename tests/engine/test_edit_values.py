"""VR validation of edited values: every refusal names the field."""

from __future__ import annotations

import pytest

from gearview.edit.charset import can_encode
from gearview.edit.values import resolve_field, validate, validate_all
from gearview.errors import InvalidValueError


@pytest.mark.parametrize(
    "keyword, value, expected",
    [
        ("PatientName", "Doe^John", "Doe^John"),
        (
            "PatientName",
            "Yamada^Tarou=山田^太郎=やまだ^たろう",
            "Yamada^Tarou=山田^太郎=やまだ^たろう",
        ),
        ("PatientBirthDate", "19800229", "19800229"),
        ("PatientBirthDate", "", ""),
        ("StudyTime", "101530.123456", "101530.123456"),
        ("StudyTime", "10", "10"),
        ("AcquisitionDateTime", "20240102101530.5+0100", "20240102101530.5+0100"),
        ("PatientAge", "045Y", "045Y"),
        ("PatientSex", "F", "F"),
        ("OtherPatientIDs", "A1\\B2", "A1\\B2"),
        ("AccessionNumber", " ACC9 ", "ACC9"),
        ("00100020", "PID", "PID"),
        ("(0010,1010)", "030Y", "030Y"),
        ("SeriesNumber", "12", "12"),
        ("PatientWeight", "72.5", "72.5"),
    ],
)
def test_valid_values(keyword: str, value: str, expected: str) -> None:
    assert validate(resolve_field(keyword), value) == expected


@pytest.mark.parametrize(
    "keyword, value, fragment",
    [
        ("PatientBirthDate", "19800230", "PatientBirthDate"),
        ("PatientBirthDate", "1980-01-01", "YYYYMMDD"),
        ("StudyDate", "2024010", "StudyDate"),
        ("StudyTime", "256000", "out of range"),
        ("StudyTime", "10:15", "StudyTime"),
        ("AcquisitionDateTime", "20241301", "calendar"),
        ("PatientAge", "45Y", "PatientAge"),
        ("PatientSex", "X", "M, F or O"),
        ("PatientSex", "m", "A-Z"),
        ("PatientName", "a^b^c^d^e^f", "5 components"),
        ("PatientName", "a=b=c=d", "3 component groups"),
        ("PatientName", "x" * 65, "64 characters"),
        ("PatientName", "Doe\\John", "backslash"),
        ("PatientID", "x" * 65, "at most 64"),
        ("AccessionNumber", "x" * 17, "at most 16"),
        ("StudyDescription", "a\\b", "backslash"),
        ("StudyID", "bad\x01", "control characters"),
        ("SeriesNumber", "1.5", "integer string"),
        ("PatientWeight", "heavy", "decimal string"),
    ],
)
def test_invalid_values_name_the_field(keyword: str, value: str, fragment: str) -> None:
    field = resolve_field(keyword)
    with pytest.raises(InvalidValueError) as info:
        validate(field, value)
    assert field.keyword in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("StudyInstanceUID", "VR UI"),
        ("ReferencedImageSequence", "VR SQ"),
        ("PixelData", "file format"),
        ("SpecificCharacterSet", "managed by gearview"),
        ("TransferSyntaxUID", "file format"),
        ("NoSuchKeyword", "unknown attribute"),
        ("00090010", "not a standard attribute"),
    ],
)
def test_refused_attributes(name: str, fragment: str) -> None:
    with pytest.raises(InvalidValueError, match=fragment):
        resolve_field(name)


def test_validate_all_stops_at_first_bad_value() -> None:
    with pytest.raises(InvalidValueError, match="PatientBirthDate"):
        validate_all({"PatientName": "A^B", "PatientBirthDate": "20241399"})


@pytest.mark.parametrize(
    "text, charsets, expected",
    [
        ("Müller", ["ISO_IR 6"], False),
        ("Müller", ["ISO_IR 100"], True),
        ("Ωmega", ["ISO_IR 100"], False),
        ("山田^太郎", ["", "ISO 2022 IR 87"], True),
        ("Müller^山田", ["", "ISO 2022 IR 87"], False),
        ("anything 山田 ü", ["ISO_IR 192"], True),
    ],
)
def test_can_encode(text: str, charsets: list[str], expected: bool) -> None:
    assert can_encode(text, charsets) is expected
