"""How DICOM values read to a person: one formatter for every view.

The local study list, Query/Retrieve, the edit forms, the viewer's corner
text and a disc's INDEX.HTM all show names, dates and times through these
functions, so `JONES^MARY` / `19800101` read the same everywhere
("JONES, MARY", "1980-01-01"). Views that format a value keep the raw one at
hand (a tooltip); a value that does not parse is shown as found, never
dropped or guessed at.
"""

from __future__ import annotations

import re

_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_TIME = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
_DATETIME = re.compile(r"^(\d{8})(\d{2,6}(?:\.\d{1,6})?)?([+-]\d{4})?$")


def format_person_name(value: str) -> str:
    """PN `Family^Given^Middle^Prefix^Suffix` as 'Family, Given Middle'.

    The alphabetic group is shown; a name with only an ideographic or
    phonetic group shows that one.
    """
    groups = [g for g in value.split("=") if g.strip("^ ")]
    if not groups:
        return ""
    parts = [p.strip() for p in groups[0].split("^")]
    family = parts[0]
    rest = " ".join(p for p in parts[1:3] if p)
    return f"{family}, {rest}" if family and rest else family or rest


def format_date(value: str) -> str:
    """DA `YYYYMMDD` as `YYYY-MM-DD`; a range `A-B` as `A – B` (an open end stays open)."""
    text = value.strip()
    if "-" in text:
        start, _, end = text.partition("-")
        if (not start or _DATE.match(start)) and (not end or _DATE.match(end)) and (start or end):
            return f"{_date(start)} – {_date(end)}".strip()
        return value
    return _date(text) if _DATE.match(text) else value


def _date(text: str) -> str:
    match = _DATE.match(text)
    return "-".join(match.groups()) if match else text


def format_time(value: str) -> str:
    """TM `HHMMSS.FFFFFF` as `HH:MM:SS` (fractions dropped; `HH` and `HHMM` allowed)."""
    match = _TIME.match(value.strip())
    if not match:
        return value
    return ":".join(part for part in match.groups()[:3] if part)


def format_datetime(value: str) -> str:
    """DT `YYYYMMDDHHMMSS.FFFFFF&ZZXX` as `YYYY-MM-DD HH:MM:SS +ZZXX`."""
    match = _DATETIME.match(value.strip())
    if not match:
        return value
    day, clock, zone = match.groups()
    return " ".join(p for p in (_date(day), format_time(clock or ""), zone or "") if p)


_BY_VR = {
    "PN": format_person_name,
    "DA": format_date,
    "TM": format_time,
    "DT": format_datetime,
}


def format_value(vr: str, value: str) -> str:
    """A value of representation `vr` as a person reads it (other VRs unchanged)."""
    formatter = _BY_VR.get(vr)
    return formatter(value) if formatter else value
