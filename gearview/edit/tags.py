"""The element tree of an instance (no Qt): every element, sequences nested.

The tag editor and the viewer's Tags dock show it. Values are rendered as
short text (binary and long values summarised; pixel data and other binary
values are never read from disk); private elements carry their creator and
are read-only; `editable` says whether the keyword editor may change an
element. A tree cut at its node limit ends with a "more elements" node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_description, dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag

from gearview.edit.values import resolve_field
from gearview.errors import GearviewError, InvalidDicomError

MAX_TEXT = 120
BINARY_VRS = {"OB", "OW", "OF", "OD", "OL", "OV", "UN"}
MAX_NODES = 50_000
#: Sequence nesting shown (deeper items are summarised, never walked).
MAX_DEPTH = 32
PIXEL_DATA = Tag("PixelData")


@dataclass
class TagNode:
    tag: str
    keyword: str
    name: str
    vr: str
    value: str
    depth: int
    private_creator: str = ""
    editable: bool = False
    #: the whole value as text, for editable elements (the editor's starting point)
    full: str = ""
    children: list[TagNode] = field(default_factory=list)

    def matches(self, text: str) -> bool:
        """Search by keyword, name or tag ('0010,0010', '00100010', '(0010,0010)')."""
        needle = text.strip().casefold()
        if not needle:
            return True
        compact = self.tag.replace("(", "").replace(")", "").replace(",", "").casefold()
        needle_compact = needle.replace("(", "").replace(")", "").replace(",", "")
        return (
            needle in self.keyword.casefold()
            or needle in self.name.casefold()
            or needle_compact in compact
        )


def _binary_summary(vr: str, length: int | None) -> str:
    if length == 0xFFFFFFFF:
        return "<encapsulated>"
    return f"<{vr}, {length if length is not None else '?'} bytes>"


def _render(elem: DataElement) -> str:
    if elem.VR == "SQ":
        return f"{len(elem.value)} item(s)"
    try:
        value = elem.value
    except Exception:  # a value pydicom cannot decode is shown as such, never fatal
        return "<undecodable>"
    if elem.VR in BINARY_VRS:
        return _binary_summary(elem.VR, len(value) if isinstance(value, bytes) else None)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        text = "\\".join(str(v) for v in value)
    else:
        text = "" if value is None else str(value)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def _full_text(elem: DataElement) -> str:
    value = elem.value
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def _element(ds: Dataset, tag: BaseTag) -> tuple[DataElement | None, str]:
    """The element, or None plus a summary for binary values (never loaded)."""
    raw = ds.get_item(tag, keep_deferred=True)
    if isinstance(raw, RawDataElement):
        vr = raw.VR or dictionary_vr_or_un(tag)
        if vr in BINARY_VRS or tag == PIXEL_DATA:
            return None, _binary_summary(vr, raw.length)
    return ds[tag], ""


def _dictionary_name(tag: BaseTag) -> str:
    """The element's name as the standard spells it ("Pixel Data"), or "Private"."""
    try:
        return dictionary_description(tag)
    except KeyError:
        return "Private"


def dictionary_vr_or_un(tag: BaseTag) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _editable(elem: DataElement, depth: int) -> bool:
    if depth or elem.tag.is_private:
        return False
    try:
        resolve_field(elem.keyword or f"{elem.tag:08X}")
        return True
    except GearviewError:
        return False


def _more(depth: int, text: str) -> TagNode:
    return TagNode(tag="…", keyword="", name=text, vr="", value="", depth=depth)


def _nodes(ds: Dataset, depth: int, budget: list[int]) -> list[TagNode]:
    nodes = []
    for tag in list(ds.keys()):
        budget[0] -= 1
        if budget[0] < 0:
            if budget[0] == -1:
                nodes.append(_more(depth, "(more elements not shown)"))
            break
        try:
            elem, summary = _element(ds, tag)
        except Exception as exc:  # noqa: BLE001 - one unreadable element must not hide the others
            keyword = keyword_for_tag(tag) or ""
            nodes.append(
                TagNode(str(tag), keyword, _dictionary_name(tag), "", f"<unreadable: {exc}>", depth)
            )
            continue
        creator = ""
        if tag.is_private and not tag.is_private_creator:
            block = ds.get(Tag(tag.group, tag.element >> 8))
            creator = str(block.value) if block is not None else "(no creator)"
        if elem is None:
            raw = ds.get_item(tag, keep_deferred=True)
            vr = raw.VR or dictionary_vr_or_un(tag)
            keyword = keyword_for_tag(tag) or ""
            nodes.append(
                TagNode(
                    tag=str(tag),
                    keyword=keyword,
                    name=_dictionary_name(tag),
                    vr=str(vr),
                    value=summary,
                    depth=depth,
                    private_creator=creator,
                )
            )
            continue
        editable = _editable(elem, depth)
        node = TagNode(
            tag=str(tag),
            keyword=elem.keyword or "",
            name=elem.name,
            vr=str(elem.VR),
            value=_render(elem),
            depth=depth,
            private_creator=creator,
            editable=editable,
            full=_full_text(elem) if editable else "",
        )
        if elem.VR == "SQ":
            for number, item in enumerate(elem.value, 1):
                item_node = TagNode(
                    tag="(FFFE,E000)",
                    keyword="Item",
                    name=f"Item {number}",
                    vr="",
                    value="",
                    depth=depth + 1,
                )
                item_node.children = (
                    _nodes(item, depth + 2, budget)
                    if depth < MAX_DEPTH
                    else [_more(depth + 2, "(nested too deep to show)")]
                )
                node.children.append(item_node)
        nodes.append(node)
    return nodes


def dataset_tree(ds: Dataset, limit: int = MAX_NODES) -> list[TagNode]:
    """All elements of an opened instance (file meta first), at most `limit` of them."""
    budget = [limit]
    meta = _nodes(getattr(ds, "file_meta", None) or Dataset(), 0, budget)
    for node in meta:
        node.editable = False
    try:
        return meta + _nodes(ds, 0, budget)
    except RecursionError:
        raise InvalidDicomError("sequences nested too deep to show") from None


def element_tree(path: Path) -> list[TagNode]:
    """All elements of one instance file, pixel data summarised, not read."""
    try:
        ds = pydicom.dcmread(path, defer_size=4096)
    except RecursionError:
        raise InvalidDicomError("sequences nested too deep to show") from None
    except Exception as exc:
        raise InvalidDicomError(f"cannot read the instance: {exc}") from None
    return dataset_tree(ds)
