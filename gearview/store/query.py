"""C-FIND / C-MOVE matching on the SQLite index (Study Root: STUDY, SERIES, IMAGE).

PS3.4 C.2.2.2 matching, translated to SQL so a large cache is never scanned
in Python: single value, universal (empty) and wildcard (`*`, `?`) matching,
lists of UIDs, and date/time ranges. Person names match case-insensitively
(the SPEC asks for it "where the peer allows"); other strings are exact.
Keys the index does not hold are returned empty, as PS3.4 permits.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from gearview.errors import InvalidValueError
from gearview.store.attributes import ATTRIBUTES, IMAGE, PATIENT, SERIES, STUDY, UNIQUE

LEVELS = (STUDY, SERIES, IMAGE)
_STUDY, _SERIES, _SOP = (UNIQUE[level].column for level in LEVELS)

PATIENT_JOIN = "JOIN patient p ON p.pk = s.patient_pk"
STUDY_FROM = f"study s {PATIENT_JOIN}"
SERIES_FROM = f"series se JOIN study s ON s.{_STUDY} = se.{_STUDY} {PATIENT_JOIN}"
IMAGE_FROM = (
    f"instance i JOIN series se ON se.{_SERIES} = i.{_SERIES} AND se.{_STUDY} = i.{_STUDY} "
    f"JOIN study s ON s.{_STUDY} = se.{_STUDY} {PATIENT_JOIN}"
)
FROM = {STUDY: STUDY_FROM, SERIES: SERIES_FROM, IMAGE: IMAGE_FROM}
UNIQUE_KEY = {level: UNIQUE[level].keyword for level in LEVELS}
ORDER = {
    STUDY: f"s.study_date, s.study_time, s.{_STUDY}",
    SERIES: f"s.{_STUDY}, se.series_number IS NULL, se.series_number, se.{_SERIES}",
    IMAGE: f"se.{_SERIES}, i.instance_number IS NULL, i.instance_number, i.{_SOP}",
}


@dataclass(frozen=True)
class Key:
    """How one DICOM keyword maps onto the index."""

    level: str
    expr: str
    kind: str  # uid, str, pn, date, time, int, list (ModalitiesInStudy), count


#: Every attribute the index keeps is a matching key at its level (patient ones at STUDY:
#: Study Root), except those kept only for the instance's own checks.
KEYS: dict[str, Key] = {
    a.keyword: Key(STUDY if a.level == PATIENT else a.level, a.expr(), a.kind)
    for a in ATTRIBUTES
    if a.stored and not a.meta and a.keyword != "SpecificCharacterSet"
}
#: Returned without being asked for, so a response always identifies its entity.
NOT_MATCHED = {"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle"}


def _level(identifier: Dataset) -> str:
    level = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    if level == "PATIENT" or level not in LEVELS:
        raise InvalidValueError(f"unsupported Query/Retrieve Level {level!r} for Study Root")
    return level


def _wildcard_like(value: str) -> str:
    """DICOM `*`/`?` to a LIKE pattern (escape char `!`)."""
    out = []
    for ch in value:
        if ch in "!%_":
            out.append("!" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _wildcard_glob(value: str) -> str:
    """DICOM `*`/`?` to a (case-sensitive) GLOB pattern; `[` is GLOB's only other special."""
    return value.replace("[", "[[]")


def _range(expr: str, value: str) -> tuple[str, list[object]]:
    low, _, high = value.partition("-")
    clauses, params = [], []
    if low.strip():
        clauses.append(f"{expr} >= ?")
        params.append(low.strip())
    if high.strip():
        clauses.append(f"{expr} <= ?")
        params.append(high.strip())
    if not clauses:
        return "1", []
    return f"({expr} != '' AND {' AND '.join(clauses)})", params


def _condition(key: Key, value: str) -> tuple[str, list[object]]:
    """SQL condition for one non-empty matching key."""
    expr = key.expr
    if key.kind == "uid":
        uids = [u.strip() for u in value.split("\\") if u.strip()]
        if len(uids) == 1:
            return f"{expr} = ?", uids
        return f"{expr} IN ({','.join('?' * len(uids))})", list(uids)
    if key.kind in ("date", "time"):
        if "-" in value:
            return _range(expr, value)
        if key.kind == "time":
            return f"{expr} LIKE ? ESCAPE '!'", [_wildcard_like(value) + "%"]
        return f"{expr} = ?", [value]
    if key.kind == "int":
        try:
            return f"{expr} = ?", [int(value)]
        except ValueError:
            raise InvalidValueError(f"not a number: {value!r}") from None
    if key.kind == "list":
        mods = [m.strip() for m in value.split("\\") if m.strip()]
        marks = ",".join("?" * len(mods))
        return (
            f"EXISTS (SELECT 1 FROM series x WHERE x.{_STUDY} = s.{_STUDY} "
            f"AND x.modality IN ({marks}))",
            list(mods),
        )
    if key.kind == "count":
        return "1", []
    wild = "*" in value or "?" in value
    if key.kind == "pn":
        return f"{expr} LIKE ? ESCAPE '!'", [_wildcard_like(value)]
    if wild:
        return f"{expr} GLOB ?", [_wildcard_glob(value)]
    return f"{expr} = ?", [value]


def _matching(identifier: Dataset, level: str) -> tuple[list[str], list[str], list[object]]:
    """(returned keywords, WHERE clauses, params) for an identifier at `level`."""
    allowed = LEVELS[: LEVELS.index(level) + 1]
    keywords, clauses, params = [], [], []
    for elem in identifier:
        keyword = elem.keyword
        if not keyword or keyword in NOT_MATCHED:
            continue
        keywords.append(keyword)
        key = KEYS.get(keyword)
        if key is None or key.level not in allowed or elem.VR == "SQ":
            continue
        value = _value_text(elem)
        if value == "" or value == "*":
            continue
        clause, extra = _condition(key, value)
        clauses.append(clause)
        params.extend(extra)
    return keywords, clauses, params


def _value_text(elem: DataElement) -> str:
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def find(conn: sqlite3.Connection, identifier: Dataset) -> Iterator[Dataset]:
    """Yield one response identifier per matching entity at the requested level."""
    level = _level(identifier)
    keywords, clauses, params = _matching(identifier, level)
    unique = UNIQUE_KEY[level]
    if unique not in keywords:
        keywords.append(unique)
    allowed = LEVELS[: LEVELS.index(level) + 1]
    columns = [kw for kw in keywords if kw in KEYS and KEYS[kw].level in allowed]
    select = ", ".join(f"{KEYS[kw].expr} AS c{n}" for n, kw in enumerate(columns))
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT {select} FROM {FROM[level]}{where} ORDER BY {ORDER[level]}"
    for row in conn.execute(sql, params):
        yield _response(identifier, level, keywords, columns, row)


def _response(
    identifier: Dataset, level: str, keywords: list[str], columns: list[str], row: sqlite3.Row
) -> Dataset:
    ds = Dataset()
    values = {kw: row[n] for n, kw in enumerate(columns)}
    non_ascii = any(isinstance(v, str) and not v.isascii() for v in values.values())
    if non_ascii or "SpecificCharacterSet" in identifier:
        ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = level
    if "RetrieveAETitle" in identifier:
        ds.RetrieveAETitle = identifier.RetrieveAETitle
    for keyword in keywords:
        tag = Tag(keyword)
        vr = identifier[tag].VR if tag in identifier else _vr(keyword)
        if keyword not in values:
            ds[tag] = DataElement(tag, vr, Sequence() if vr == "SQ" else None)
            continue
        value = values[keyword]
        if value is None or value == "":
            ds[tag] = DataElement(tag, vr, None)
        elif KEYS[keyword].kind == "list":
            ds[tag] = DataElement(tag, vr, str(value).split("\\"))
        else:
            ds[tag] = DataElement(tag, vr, value)
    return ds


def _vr(keyword: str) -> str:
    from pydicom.datadict import dictionary_VR

    return dictionary_VR(Tag(keyword))


def instance_paths(
    conn: sqlite3.Connection, identifier: Dataset, files_dir: Path
) -> list[tuple[Path, str, str, str]]:
    """(path, sop_class, transfer_syntax, sop_uid) of every instance a C-MOVE identifier names."""
    level = _level(identifier)
    unique = UNIQUE_KEY[level]
    if unique not in identifier or not _value_text(identifier[unique]):
        raise InvalidValueError(f"a {level} level C-MOVE needs {unique} (PS3.4 C.4.2.2.1)")
    _, clauses, params = _matching(identifier, level)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT i.path, i.sop_class_uid, i.transfer_syntax_uid, i.{_SOP} FROM {IMAGE_FROM}{where} "
        f"ORDER BY {ORDER['IMAGE']}"
    )
    return [(files_dir / r[0], r[1], r[2], r[3]) for r in conn.execute(sql, params)]
