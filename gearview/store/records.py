"""Plain records the cache returns to the CLI, the server and the GUI.

Their attribute fields are generated from the vocabulary (`store/attributes.py`):
one field per attribute of the record's levels, named like its index column,
so `from_row` is a loop and `to_json` maps fields to the SPEC §3 keys.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gearview.store.attributes import (
    HEADER,
    IMAGE,
    PATIENT,
    SERIES,
    STUDY,
    UNIQUE,
    Attribute,
    at_level,
    parent_keys,
)


def _spec(attr: Attribute) -> tuple[str, Any, Any]:
    if attr.kind == "list":
        return attr.field, list[str], dataclasses.field(default_factory=list)
    if attr.kind == "count":
        return attr.field, int, dataclasses.field(default=0)
    if attr.is_int:
        return attr.field, int | None, dataclasses.field(default=attr.default)
    return attr.field, str, dataclasses.field(default="")


def _value(attr: Attribute, value: Any) -> Any:
    if attr.kind == "list":
        return [v for v in (value or "").split("\\") if v]
    if attr.kind == "str" or attr.kind in ("uid", "pn", "date", "time"):
        return value or ""
    return value


def _default(value: Any) -> Any:
    if isinstance(value, (list, dict, set)):
        return dataclasses.field(default_factory=type(value))
    return dataclasses.field(default=value)


class _Record:
    """What every generated record does with its attributes."""

    ATTRIBUTES: tuple[Attribute, ...] = ()
    #: The attributes `to_json` shows (the parents' UIDs are not part of a child's object).
    JSON: tuple[Attribute, ...] = ()
    #: Fields that are not attributes, read from a row when it has them (name -> type).
    EXTRA: dict[str, type] = {}

    @classmethod
    def from_row(cls, row: sqlite3.Row, files_dir: Path | None = None) -> Any:
        """The record of an index row; `files_dir` makes a relative `path` absolute."""
        values = {a.field: _value(a, row[a.field]) for a in cls.ATTRIBUTES}
        names = row.keys()
        for name, kind in cls.EXTRA.items():
            if name in names:
                values[name] = kind(row[name])
        if files_dir is not None and "path" in values:
            values["path"] = files_dir / values["path"]
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The stable SPEC §3 shape for `--json` output."""
        return {a.json: getattr(self, a.field) for a in self.JSON}


def _record(name: str, doc: str, level: str, attributes: Iterable[Attribute],
            extra: Iterable[tuple[str, type, Any]] = ()) -> type:
    """A dataclass with the UID fields first (required), then one field per attribute."""
    parents = parent_keys(level)
    keys = parents + ((UNIQUE[level],) if level in UNIQUE else ())
    attrs = keys + tuple(a for a in attributes if a not in keys)
    extra = tuple(extra)
    fields = [(a.field, str) for a in keys] + [_spec(a) for a in attrs[len(keys):]]
    fields += [(n, kind, _default(default)) for n, kind, default in extra]
    cls = dataclasses.make_dataclass(name, fields, bases=(_Record,),
                                     namespace={"__doc__": doc, "__module__": __name__})
    cls.ATTRIBUTES = attrs
    cls.JSON = tuple(a for a in attrs if a.json is not None and a not in parents)
    cls.EXTRA = {n: kind for n, kind, _ in extra}
    return cls


PatientRecord = _record(
    "PatientRecord", "One patient as the index knows it (demographics of its studies).",
    PATIENT, at_level(PATIENT),
)

StudyRecord = _record(
    "StudyRecord", "One study with its patient, counts and whether its instances disagree.",
    STUDY, at_level(PATIENT) + at_level(STUDY),
    extra=(("updated_at", float, 0.0), ("mismatch", bool, False)),
)

SeriesRecord = _record(
    "SeriesRecord", "One series of a study.",
    SERIES, at_level(SERIES),
)

InstanceRecord = _record(
    "InstanceRecord", "One cached instance: where its file is and how it is encoded.",
    IMAGE, at_level(IMAGE, computed=False),
    extra=(("path", Path, Path()), ("size", int, 0), ("received_at", float, 0.0),
           ("source_ae", str, "")),
)

InstanceInfo = _record(
    "InstanceInfo", "What the index stores about one instance; built from its header only.",
    IMAGE, HEADER, extra=(("has_pixels", bool, False), ("warnings", list[str], [])),
)
