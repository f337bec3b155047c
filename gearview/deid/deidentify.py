"""De-identify one data set in memory: PS3.15 Basic Application Level Confidentiality Profile.

Every element at any depth is handled: private elements and group lengths
go, the attributes of Table E.1-1 get the action `profile.resolve` chose,
UIDs (listed or not, except registered ones and class/syntax UIDs) become
the station's keyed UIDs so references inside the copy still resolve, and
the patient gets a pseudonym. The data set is then marked: Patient Identity
Removed, De-identification Method (+ Code Sequence, CID 7050) and
Longitudinal Temporal Information Modified.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID_dictionary

from gearview import __version__
from gearview.deid.keys import KeyedMapping, station_key
from gearview.deid.profile import TABLE_RELEASE, Action, resolve
from gearview.edit.values import resolve_field, validate
from gearview.errors import InvalidDicomError, InvalidValueError
from gearview.home import Home

#: PS3.16 CID 7050 codes (DCM) written to De-identification Method Code Sequence.
BASIC_PROFILE = ("113100", "Basic Application Confidentiality Profile")
RETAIN_FULL_DATES = ("113106", "Retain Longitudinal Temporal Information Full Dates Option")
PROFILE_NAME = "PS3.15 Basic Application Level Confidentiality Profile"

DUMMY_TEXT = "ANONYMIZED"
#: Dummy values (action D) for the VRs that cannot hold DUMMY_TEXT.
_DUMMY_BY_VR: dict[str, object] = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "DS": "0",
    "IS": "0",
}
_NUMBER_VRS = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT"}
_BINARY_VRS = {"OB", "OW", "OD", "OF", "OL", "OV", "UN"}
#: Eight zero bytes: a whole number of words for every binary VR.
_DUMMY_BYTES = b"\x00" * 8
#: UI attributes that name a class, a syntax or a coding scheme, never an instance.
_WELL_KNOWN_UI_SUFFIXES = ("ClassUID", "SyntaxUID", "ClassUIDInFile", "SyntaxUIDInFile")
_WELL_KNOWN_UI = frozenset(
    {
        Tag("CodingSchemeUID"),
        Tag("ContextUID"),
        Tag("MappingResourceUID"),
        Tag("ContextGroupExtensionCreatorUID"),
    }
)
PATIENT_NAME = Tag("PatientName")
PATIENT_ID = Tag("PatientID")
TEXT_VALUE = Tag("TextValue")
ENCAPSULATED_DOCUMENT = Tag("EncapsulatedDocument")
#: Deeper than this is refused (the cache accepts only sane files; this is a second fence).
MAX_DEPTH = 64


@dataclass(frozen=True)
class DeidOptions:
    """What the user chose: the profile's options and the pseudonym."""

    retain_dates: bool = False
    patient_name: str = ""
    patient_id: str = ""
    allow_burned_in: bool = False

    def validated(self) -> DeidOptions:
        """The options with the pseudonym checked as the attributes' VRs require."""
        values = {}
        for keyword, value in (("PatientName", self.patient_name), ("PatientID", self.patient_id)):
            if value and not value.isascii():
                raise InvalidValueError(
                    f"{keyword}: a pseudonym must be plain ASCII text",
                    hint="use letters A-Z, digits and ^ for the name",
                )
            values[keyword] = validate(resolve_field(keyword), value)
        return DeidOptions(
            self.retain_dates, values["PatientName"], values["PatientID"], self.allow_burned_in
        )

    def to_params(self) -> dict[str, Any]:
        """A JSON-safe form (job records)."""
        return asdict(self)

    @classmethod
    def from_params(cls, data: dict[str, Any] | None) -> DeidOptions | None:
        if data is None:
            return None
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def codes(self) -> list[tuple[str, str]]:
        """CID 7050 (code value, meaning) of what is applied."""
        return [BASIC_PROFILE, RETAIN_FULL_DATES] if self.retain_dates else [BASIC_PROFILE]

    def describe(self) -> dict[str, Any]:
        """What the audit log records: the profile and options, never a value."""
        return {
            "profile": PROFILE_NAME,
            "table": TABLE_RELEASE,
            "options": [RETAIN_FULL_DATES[1]] if self.retain_dates else [],
            "codes": [code for code, _ in self.codes],
            "pseudonym": "chosen" if self.patient_name or self.patient_id else "generated",
            "burned_in_allowed": self.allow_burned_in,
        }


def dummy_value(vr: str) -> object:
    """A non-empty value that is valid for `vr` and identifies nobody (action D)."""
    vr = vr.split(" or ")[0]
    if vr in _BINARY_VRS:
        return _DUMMY_BYTES
    if vr in _NUMBER_VRS:
        return 0
    return _DUMMY_BY_VR.get(vr, DUMMY_TEXT)


def empty_value(vr: str) -> object:
    """A zero-length value for `vr` (action Z)."""
    vr = vr.split(" or ")[0]
    if vr == "SQ":
        return Sequence([])
    if vr in _BINARY_VRS:
        return b""
    return None if vr in _NUMBER_VRS else ""


def _names_an_instance(elem: DataElement, value: str) -> bool:
    """True for a UID not in the table that still identifies something (needs remapping)."""
    if value in UID_dictionary or elem.tag in _WELL_KNOWN_UI:
        return False
    return not elem.keyword.endswith(_WELL_KNOWN_UI_SUFFIXES)


class Deidentifier:
    """Applies the profile with one station key and one set of options."""

    def __init__(self, options: DeidOptions, mapping: KeyedMapping) -> None:
        self.options = options
        self.mapping = mapping

    @classmethod
    def for_home(cls, home: Home, options: DeidOptions) -> Deidentifier:
        return cls(options.validated(), KeyedMapping(station_key(home)))

    def pseudonym(self, ds: Dataset) -> tuple[str, str]:
        """(Patient's Name, Patient ID) of the copy: the chosen ones or generated from the ID."""
        patient_id = self.options.patient_id
        if not patient_id:
            identity = [_text(ds, "PatientID"), _text(ds, "IssuerOfPatientID")]
            if not identity[0]:  # no ID: the name and birth date tell patients apart
                identity += [_text(ds, "PatientName"), _text(ds, "PatientBirthDate")]
            patient_id = self.mapping.pseudonym_id(*identity)
        return self.options.patient_name or f"ANONYMOUS^{patient_id}", patient_id

    def apply(self, ds: Dataset, burned_in: bool = False) -> None:
        """De-identify `ds` in place.

        `burned_in`: the instance may show identifying text (in its pixels or
        an encapsulated document) and the user allowed it. Such a document
        is kept as it is instead of the profile's dummy, and De-identification
        Method says that this text was not removed.
        """
        name, patient_id = self.pseudonym(ds)
        try:
            self._clean(ds, 0, {PATIENT_NAME: name, PATIENT_ID: patient_id}, burned_in)
        except RecursionError:
            raise InvalidDicomError("an instance is nested too deep to de-identify") from None
        ds.PatientName = name
        ds.PatientID = patient_id
        self._mark(ds, burned_in)

    def _clean(
        self, ds: Dataset, depth: int, pseudonym: dict[BaseTag, str], burned_in: bool
    ) -> None:
        if depth > MAX_DEPTH:
            raise InvalidDicomError("an instance is nested too deep to de-identify")
        for tag in list(ds.keys()):
            if tag.is_private or tag.element == 0 or _is_overlay(tag):
                del ds[tag]
                continue
            elem = ds[tag]
            if tag in pseudonym:
                elem.value = pseudonym[tag]
                continue
            action = self._action(elem, burned_in)
            if action is Action.REMOVE:
                del ds[tag]
            elif action is Action.EMPTY:
                elem.value = empty_value(elem.VR)
            elif action is Action.UID or action is Action.DUMMY and elem.VR == "UI":
                elem.value = self._uids(elem.value)
            elif action is Action.DUMMY and elem.VR == "SQ":
                for item in elem.value:
                    self._dummy_item(item, depth + 1)
            elif action is Action.DUMMY:
                elem.value = dummy_value(elem.VR)
            elif action is Action.CLEAN:
                for item in elem.value:
                    self._clean(item, depth + 1, pseudonym, burned_in)

    def _action(self, elem: DataElement, burned_in: bool) -> Action:
        """The table's action, else the rules for what the table does not list."""
        if elem.tag == ENCAPSULATED_DOCUMENT and burned_in:
            return Action.KEEP
        action = resolve(int(elem.tag), elem.VR, self.options.retain_dates)
        if action is not None:
            return action
        if elem.VR == "SQ":
            return Action.CLEAN
        if elem.VR == "UI":
            values = elem.value if isinstance(elem.value, MultiValue) else [elem.value]
            named = any(v and _names_an_instance(elem, str(v)) for v in values)
            return Action.UID if named else Action.KEEP
        if elem.tag == TEXT_VALUE:  # free text of a document's content item
            return Action.DUMMY
        return Action.KEEP

    def _uids(self, value: object) -> object:
        if isinstance(value, (MultiValue, list)):
            return [self._uid(str(v)) for v in value]
        return self._uid(str(value)) if value else value

    def _uid(self, value: str) -> str:
        return value if value in UID_dictionary else self.mapping.uid(value)

    def _dummy_item(self, ds: Dataset, depth: int) -> None:
        """Action D on a sequence: keep the items' shape, replace every value in them."""
        if depth > MAX_DEPTH:
            raise InvalidDicomError("an instance is nested too deep to de-identify")
        for tag in list(ds.keys()):
            elem = ds[tag]
            if tag.is_private or tag.element == 0:
                del ds[tag]
            elif elem.VR == "SQ":
                for item in elem.value:
                    self._dummy_item(item, depth + 1)
            elif elem.VR == "UI":
                elem.value = self._uids(elem.value)
            elif elem.value not in (None, "", b""):
                elem.value = dummy_value(elem.VR)

    def _mark(self, ds: Dataset, burned_in: bool) -> None:
        ds.PatientIdentityRemoved = "YES"
        methods = [f"{BASIC_PROFILE[1]} (gearview {__version__})"[:64]]
        if self.options.retain_dates:
            methods.append(RETAIN_FULL_DATES[1])
        if burned_in:
            methods.append("Burned-in text or document not de-identified")
        existing = _existing(ds, "DeidentificationMethod")
        ds.DeidentificationMethod = existing + [m for m in methods if m not in existing]
        items = list(ds.get("DeidentificationMethodCodeSequence", []))
        present = {(i.get("CodeValue"), i.get("CodingSchemeDesignator")) for i in items}
        for code, meaning in self.options.codes:
            if (code, "DCM") not in present:
                item = Dataset()
                item.CodeValue = code
                item.CodingSchemeDesignator = "DCM"
                item.CodeMeaning = meaning
                items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        ds.LongitudinalTemporalInformationModified = (
            "UNMODIFIED" if self.options.retain_dates else "REMOVED"
        )


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "")


def _existing(ds: Dataset, keyword: str) -> list[str]:
    value = ds.get(keyword)
    if not value:
        return []
    return [str(v) for v in value] if isinstance(value, MultiValue) else [str(value)]


def _is_overlay(tag: BaseTag) -> bool:
    """Overlay groups (60xx): their data is removed by the profile, so the whole overlay goes."""
    return 0x6000 <= tag.group <= 0x601E and tag.group % 2 == 0
