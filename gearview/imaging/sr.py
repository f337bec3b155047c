"""Structured Reports and Key Object Selection as readable text (the content tree).

PS3.3 C.17.3: each content item has a relationship, a value type, a concept
name and a value; containers nest. The output is plain text lines (the viewer
shows them as plain text, never as HTML built from DICOM values).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import UID

#: Nesting deeper than this is cut (a malicious or broken tree cannot recurse forever).
MAX_DEPTH = 64
#: More items than this are summarised.
MAX_ITEMS = 20000


@dataclass(frozen=True)
class ContentLine:
    """One content item as shown: indentation depth and text."""

    depth: int
    text: str


def code_meaning(seq: object) -> str:
    """The Code Meaning of a one-item code sequence (else its value / designator)."""
    if not seq:
        return ""
    item = seq[0]
    meaning = str(item.get("CodeMeaning", "") or "")
    if meaning:
        return meaning
    return f"{item.get('CodeValue', '')} ({item.get('CodingSchemeDesignator', '')})".strip()


def _sop_name(uid: str) -> str:
    name = UID(uid).name if uid else ""
    return name if name and name != uid else uid


def _references(item: Dataset) -> str:
    parts = []
    for ref in item.get("ReferencedSOPSequence") or []:
        text = f"{_sop_name(str(ref.get('ReferencedSOPClassUID', '')))} "
        text += str(ref.get("ReferencedSOPInstanceUID", ""))
        frames = ref.get("ReferencedFrameNumber")
        if frames:
            text += f" frames {frames}"
        parts.append(text)
    return "; ".join(parts)


def item_value(item: Dataset) -> str:
    """The displayed value of one content item, by value type (units for NUM)."""
    vtype = str(item.get("ValueType", "") or "").upper()
    if vtype == "TEXT":
        return str(item.get("TextValue", "") or "")
    if vtype == "CODE":
        return code_meaning(item.get("ConceptCodeSequence"))
    if vtype == "NUM":
        measured = item.get("MeasuredValueSequence")
        if not measured:
            return "(no value)"
        value = measured[0].get("NumericValue", "")
        units = code_meaning(measured[0].get("MeasurementUnitsCodeSequence"))
        return f"{value} {units}".strip()
    if vtype in ("DATETIME", "DATE", "TIME"):
        keyword = {"DATETIME": "DateTime", "DATE": "Date", "TIME": "Time"}[vtype]
        return str(item.get(keyword, "") or "")
    if vtype == "PNAME":
        return str(item.get("PersonName", "") or "")
    if vtype == "UIDREF":
        return str(item.get("UID", "") or "")
    if vtype in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        return _references(item)
    if vtype in ("SCOORD", "SCOORD3D"):
        data = item.get("GraphicData") or []
        return f"{item.get('GraphicType', '')} {list(data)[:16]}"
    if "ReferencedContentItemIdentifier" in item:
        return "see item " + ".".join(str(v) for v in item.ReferencedContentItemIdentifier)
    if vtype == "TCOORD":
        return str(item.get("TemporalRangeType", "") or "")
    return ""


def _walk(items: object, depth: int, budget: list[int]) -> Iterator[ContentLine]:
    for item in items or []:
        budget[0] -= 1
        if budget[0] < 0:
            yield ContentLine(depth, "… (content tree truncated)")
            return
        relation = str(item.get("RelationshipType", "") or "")
        vtype = str(item.get("ValueType", "") or "")
        name = code_meaning(item.get("ConceptNameCodeSequence")) or vtype
        value = item_value(item)
        prefix = f"[{relation}] " if relation and relation != "CONTAINS" else ""
        text = f"{name}: {value}" if name and value else (name or value)
        yield ContentLine(depth, prefix + text)
        children = item.get("ContentSequence")
        if children:
            if depth + 1 >= MAX_DEPTH:
                yield ContentLine(depth + 1, "… (nested too deep)")
            else:
                yield from _walk(children, depth + 1, budget)


def content_lines(ds: Dataset) -> list[ContentLine]:
    """The document header, then the content tree, then KOS evidence references."""
    lines = [ContentLine(0, code_meaning(ds.get("ConceptNameCodeSequence")) or "Structured Report")]
    for keyword, label in (
        ("CompletionFlag", "Completion"),
        ("VerificationFlag", "Verification"),
        ("ContentDate", "Content date"),
    ):
        if keyword in ds:
            lines.append(ContentLine(1, f"{label}: {ds.get(keyword)}"))
    lines.extend(_walk(ds.get("ContentSequence"), 1, [MAX_ITEMS]))
    evidence = ds.get("CurrentRequestedProcedureEvidenceSequence") or []
    if evidence:
        lines.append(ContentLine(0, "Evidence"))
        for study in evidence:
            for series in study.get("ReferencedSeriesSequence") or []:
                lines.append(
                    ContentLine(
                        1, f"Series {series.get('SeriesInstanceUID', '')}: {_references(series)}"
                    )
                )
    return lines


def content_text(ds: Dataset) -> str:
    """The content tree as indented plain text."""
    out = []
    for line in content_lines(ds):
        indent = "    " * line.depth
        out.append(indent + line.text.replace("\r\n", "\n").replace("\n", "\n" + indent + "  "))
    return "\n".join(out)
