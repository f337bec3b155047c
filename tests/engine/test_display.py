"""The one formatter of names, dates and times (study list, Q/R, forms, overlays, INDEX.HTM)."""

from __future__ import annotations

import pytest

from gearview.display import (
    format_date,
    format_datetime,
    format_person_name,
    format_time,
    format_value,
)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("JONES^MARY", "JONES, MARY"),
        ("Doe^Jane^Q", "Doe, Jane Q"),
        ("Doe^Jane^^Dr^Jr", "Doe, Jane"),
        ("Doe", "Doe"),
        ("^Jane", "Jane"),
        ("Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada, Tarou"),
        ("=山田^太郎", "山田, 太郎"),
        ("", ""),
        ("^^^", ""),
    ],
)
def test_person_names_read_family_first(raw: str, shown: str) -> None:
    assert format_person_name(raw) == shown


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("19800101", "1980-01-01"),
        ("20240301-20240307", "2024-03-01 – 2024-03-07"),
        ("-20240307", "– 2024-03-07"),
        ("20240301-", "2024-03-01 –"),
        ("1980", "1980"),
        ("1980.01.01", "1980.01.01"),
        ("not-a-date", "not-a-date"),
        ("", ""),
    ],
)
def test_dates_are_iso_and_odd_values_shown_as_found(raw: str, shown: str) -> None:
    assert format_date(raw) == shown


def test_times_and_datetimes() -> None:
    assert format_time("101502.123") == "10:15:02"
    assert format_time("1015") == "10:15"
    assert format_time("10:15") == "10:15"  # an old-style value is shown as found
    assert format_datetime("20240301101502.5+0100") == "2024-03-01 10:15:02 +0100"
    assert format_datetime("20240301") == "2024-03-01"


def test_format_value_by_vr() -> None:
    assert format_value("PN", "JONES^MARY") == "JONES, MARY"
    assert format_value("DA", "19800101") == "1980-01-01"
    assert format_value("LO", "JONES^MARY") == "JONES^MARY"
