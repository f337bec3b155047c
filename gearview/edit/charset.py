"""Keep an edited instance's text encodable (SPEC §2.8).

An edited value is written in the instance's Specific Character Set when that
set can hold it (ISO 2022 code extensions included); otherwise the whole
instance switches to ISO_IR 192 (UTF-8), after decoding every existing text
value with the old set so nothing already there is garbled.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.charset import _encode_string_impl, _encode_string_parts, convert_encodings
from pydicom.dataset import Dataset

UTF8 = "ISO_IR 192"
#: VRs whose values are encoded with the Specific Character Set (PS3.5 6.1.2.3).
CHARSET_VRS = {"SH", "LO", "ST", "LT", "PN", "UC", "UT"}
DEFAULT_REPERTOIRE = {"", "ISO_IR 6", "ISO 2022 IR 6"}


def dataset_charsets(ds: Dataset) -> list[str]:
    """The defined terms of (0008,0005), default repertoire when absent."""
    value = ds.get("SpecificCharacterSet", "")
    if isinstance(value, str):
        return [value] if value else ["ISO_IR 6"]
    return [str(v) for v in value] or ["ISO_IR 6"]


def can_encode(text: str, charsets: Iterable[str]) -> bool:
    """True when `text` is representable in the given DICOM character sets, without loss."""
    if text.isascii():
        return True
    charsets = list(charsets)
    encodings = convert_encodings(charsets)
    # pydicom reads the default repertoire leniently as Latin-1; for writing it is ASCII only
    encodings = [
        "ascii" if term in DEFAULT_REPERTOIRE else enc
        for term, enc in zip(charsets, encodings, strict=True)
    ]
    for encoding in encodings:
        try:
            _encode_string_impl(text, encoding)
            return True
        except (UnicodeError, ValueError):
            continue
    if len(encodings) > 1:
        try:
            _encode_string_parts(text, encodings)
            return True
        except (UnicodeError, ValueError):
            return False
    return False


def needs_utf8(ds: Dataset, texts: Iterable[str]) -> bool:
    """True when one of the new texts cannot be written in `ds`'s current character set."""
    charsets = dataset_charsets(ds)
    if charsets == [UTF8]:
        return False
    return any(not can_encode(text, charsets) for text in texts)


def switch_to_utf8(ds: Dataset) -> None:
    """Decode every text value with the old set, then declare ISO_IR 192 for the instance.

    Decoding first turns raw elements (kept as bytes) into text, so the writer
    re-encodes all of them in UTF-8 instead of copying old-charset bytes under
    the new declaration.
    """
    ds.decode()
    ds.SpecificCharacterSet = UTF8
