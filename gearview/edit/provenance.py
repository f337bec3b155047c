"""Original Attributes Sequence (0400,0561): the previous values travel with the instance.

PS3.3 C.12.1.1.9: each modification appends an item holding the replaced
attributes (Modified Attributes Sequence), when, by which system and why, so
a PACS or a later reader can see and reverse the correction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from gearview import __version__

MODIFYING_SYSTEM = f"gearview {__version__}"
#: Defined terms for Reason for the Attribute Modification (0400,0565).
REASON_CORRECT = "CORRECT"
REASON_COERCE = "COERCE"


def modification_datetime(now: dt.datetime | None = None) -> str:
    """A DT value with the local UTC offset (YYYYMMDDHHMMSS.FFFFFF&ZZXX)."""
    now = (now or dt.datetime.now()).astimezone()
    return now.strftime("%Y%m%d%H%M%S.%f%z")


def append_original_attributes(
    ds: Dataset,
    previous: Iterable[DataElement],
    *,
    reason: str = REASON_CORRECT,
    when: str | None = None,
    source: str = "",
) -> None:
    """Add one Original Attributes item holding `previous` (new elements with the old values)."""
    modified = Dataset()
    for elem in previous:
        modified.add(elem)
    item = Dataset()
    item.AttributeModificationDateTime = when or modification_datetime()
    item.ModifyingSystem = MODIFYING_SYSTEM
    item.SourceOfPreviousValues = source
    item.ReasonForTheAttributeModification = reason
    item.ModifiedAttributesSequence = Sequence([modified])
    existing = ds.get("OriginalAttributesSequence")
    if existing is None:
        ds.OriginalAttributesSequence = Sequence([item])
    else:
        existing.append(item)
