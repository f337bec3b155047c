"""The one attribute vocabulary: every DICOM attribute the cache knows, and where it lives.

Each `Attribute` is a pydicom keyword and the Query/Retrieve level it belongs
to. Its record field and its index column are the keyword in snake case
(`PatientBirthDate` -> `patient_birth_date`), its VR comes from pydicom's
dictionary, and its level names the index table (patient, study, series,
instance). The records (`store/records.py`), the header parsers
(`store/header.py`), the index schema (`store/index.py`), the C-FIND key
maps (`store/query.py`, `net/query.py`) and the edit maps (`edit/apply.py`,
`edit/structure.py`) are all built from `ATTRIBUTES`, so an attribute is
added in one line here.

The only other names are the `--json` keys SPEC §3 fixed before this table
(`study_uid`, `birth_date`, `accession`, ...): `Attribute.json`.
Function parameters that name one entity (`study_uid`, `sop_uid`) are
identifiers, not attributes, and keep their short names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from pydicom.datadict import dictionary_VR
from pydicom.tag import BaseTag, Tag

PATIENT, STUDY, SERIES, IMAGE = "PATIENT", "STUDY", "SERIES", "IMAGE"
LEVELS = (PATIENT, STUDY, SERIES, IMAGE)
#: The index table of each level.
TABLE = {PATIENT: "patient", STUDY: "study", SERIES: "series", IMAGE: "instance"}
#: How SQL in the store refers to each level's table.
ALIAS = {PATIENT: "p", STUDY: "s", SERIES: "se", IMAGE: "i"}

_WORD = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(keyword: str) -> str:
    """`SOPInstanceUID` -> `sop_instance_uid`: the field and column name of a keyword."""
    return _WORD.sub("_", keyword).lower()


@dataclass(frozen=True)
class Attribute:
    """One attribute: where it is kept and how it is named outside the index."""

    keyword: str
    level: str
    #: Its SPEC §3 `--json` key; None when `--json` does not show it.
    json: str | None = None
    #: Computed from the index (counts, modalities) by this SQL over the aliased
    #: tables (`ALIAS`); such an attribute has no column.
    sql: str = ""
    #: Kept on each instance row as well (a study's instances may disagree on it).
    per_instance: bool = False
    #: Read from the file meta group, not the data set.
    meta: bool = False
    #: An equipment attribute (General Equipment) kept per study: not a Study Root key,
    #: and a series moved into another study keeps its own.
    equipment: bool = False
    #: Read from headers to check Pixel Data, not kept in the index.
    stored: bool = True
    #: The value when the header lacks it (None: empty or absent).
    default: int | None = None

    @cached_property
    def field(self) -> str:
        return snake_case(self.keyword)

    @property
    def column(self) -> str:
        return self.field

    @cached_property
    def tag(self) -> BaseTag:
        return Tag(self.keyword)

    @cached_property
    def vr(self) -> str:
        return dictionary_VR(self.keyword)

    @property
    def table(self) -> str:
        return TABLE[self.level]

    @property
    def computed(self) -> bool:
        return bool(self.sql)

    @property
    def is_int(self) -> bool:
        return self.vr in ("IS", "US") or self.kind == "count"

    @cached_property
    def kind(self) -> str:
        """How a value matches and converts: uid, pn, date, time, int, list, count or str."""
        if self.sql:
            return "list" if self.vr == "CS" else "count"
        return {"UI": "uid", "PN": "pn", "DA": "date", "TM": "time", "IS": "int",
                "US": "int"}.get(self.vr, "str")

    def expr(self, level: str | None = None) -> str:
        """This attribute in SQL over the aliased tables (`p.patient_id`, a subquery...)."""
        return self.sql or f"{ALIAS[level or self.level]}.{self.column}"


_MODALITIES = (
    "(SELECT group_concat(m, '\\') FROM (SELECT DISTINCT modality AS m FROM series x "
    "WHERE x.study_instance_uid = s.study_instance_uid AND modality != '' ORDER BY modality))"
)

#: Every attribute, in the order SPEC §3 lists the `--json` keys of its level.
ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("StudyInstanceUID", STUDY, json="study_uid"),
    Attribute("PatientName", PATIENT, json="patient_name", per_instance=True),
    Attribute("PatientID", PATIENT, json="patient_id", per_instance=True),
    Attribute("IssuerOfPatientID", PATIENT, json="issuer_of_patient_id", per_instance=True),
    Attribute("PatientBirthDate", PATIENT, json="birth_date", per_instance=True),
    Attribute("PatientSex", PATIENT, json="sex", per_instance=True),
    Attribute("StudyDate", STUDY, json="study_date"),
    Attribute("StudyTime", STUDY, json="study_time"),
    Attribute("AccessionNumber", STUDY, json="accession"),
    Attribute("StudyID", STUDY, json="study_id"),
    Attribute("StudyDescription", STUDY, json="description"),
    Attribute("ReferringPhysicianName", STUDY, json="referring_physician"),
    Attribute("ModalitiesInStudy", STUDY, json="modalities", sql=_MODALITIES),
    Attribute("NumberOfStudyRelatedSeries", STUDY, json="series",
              sql="(SELECT count(*) FROM series x WHERE x.study_instance_uid = "
                  "s.study_instance_uid)"),
    Attribute("NumberOfStudyRelatedInstances", STUDY, json="instances",
              sql="(SELECT count(*) FROM instance x WHERE x.study_instance_uid = "
                  "s.study_instance_uid)"),
    Attribute("InstitutionName", STUDY, equipment=True),
    Attribute("SeriesInstanceUID", SERIES, json="series_uid"),
    Attribute("SeriesNumber", SERIES, json="number"),
    Attribute("Modality", SERIES, json="modality"),
    Attribute("SeriesDescription", SERIES, json="description"),
    Attribute("NumberOfSeriesRelatedInstances", SERIES, json="instances",
              sql="(SELECT count(*) FROM instance x WHERE x.series_instance_uid = "
                  "se.series_instance_uid AND x.study_instance_uid = se.study_instance_uid)"),
    Attribute("BodyPartExamined", SERIES),
    Attribute("SOPInstanceUID", IMAGE),
    Attribute("SOPClassUID", IMAGE),
    Attribute("TransferSyntaxUID", IMAGE, meta=True),
    Attribute("InstanceNumber", IMAGE),
    Attribute("NumberOfFrames", IMAGE, default=1),
    Attribute("Rows", IMAGE),
    Attribute("Columns", IMAGE),
    Attribute("SpecificCharacterSet", IMAGE),
    Attribute("SamplesPerPixel", IMAGE, stored=False),
    Attribute("BitsAllocated", IMAGE, stored=False),
    Attribute("PhotometricInterpretation", IMAGE, stored=False),
)

BY_KEYWORD: dict[str, Attribute] = {a.keyword: a for a in ATTRIBUTES}
BY_FIELD: dict[str, Attribute] = {a.field: a for a in ATTRIBUTES}
#: What a header holds and the index keeps (InstanceInfo's fields).
HEADER: tuple[Attribute, ...] = tuple(a for a in ATTRIBUTES if a.stored and not a.computed)
#: What a header is read for, including what only checks Pixel Data.
READ: tuple[Attribute, ...] = tuple(a for a in ATTRIBUTES if not a.computed and not a.meta)


def at_level(*levels: str, computed: bool = True) -> tuple[Attribute, ...]:
    """The stored attributes of these levels (and, with `computed`, the computed ones)."""
    return tuple(
        a for a in ATTRIBUTES
        if a.level in levels and a.stored and (computed or not a.computed)
    )


#: The attribute that identifies an entity of each level below PATIENT.
UNIQUE: dict[str, Attribute] = {
    STUDY: BY_KEYWORD["StudyInstanceUID"],
    SERIES: BY_KEYWORD["SeriesInstanceUID"],
    IMAGE: BY_KEYWORD["SOPInstanceUID"],
}


def parent_keys(level: str) -> tuple[Attribute, ...]:
    """The UIDs of the entities above `level` its rows and records carry (patients: none)."""
    if level == PATIENT:
        return ()
    above = LEVELS[1 : LEVELS.index(level)]
    return tuple(UNIQUE[name] for name in above)


def columns(level: str) -> tuple[Attribute, ...]:
    """Every attribute with a column in this level's table, parents' UIDs first.

    Instance rows also keep the per-instance copies (patient identity).
    """
    own = parent_keys(level) + at_level(level, computed=False)
    if level == IMAGE:
        return own + tuple(a for a in ATTRIBUTES if a.per_instance)
    return own


def attribute(keyword: str) -> Attribute | None:
    return BY_KEYWORD.get(keyword)


def field_for(keyword: str) -> str | None:
    """The record field holding `keyword`, or None when the cache does not keep it."""
    found = BY_KEYWORD.get(keyword)
    return found.field if found is not None and found.stored else None
