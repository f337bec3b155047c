"""The conformance tables come from pydicom/pynetdicom and the generated doc is current."""

from __future__ import annotations

from pathlib import Path

from pydicom.uid import JPEG2000Lossless, RLELossless
from pynetdicom.sop_class import CTImageStorage, EncapsulatedPDFStorage

from gearview import IMPLEMENTATION_VERSION_NAME, conformance


def test_spec_syntaxes_and_classes_are_supported() -> None:
    assert {JPEG2000Lossless, RLELossless} <= set(conformance.TRANSFER_SYNTAXES)
    assert len(conformance.TRANSFER_SYNTAXES) == len(set(conformance.TRANSFER_SYNTAXES))
    assert {CTImageStorage, EncapsulatedPDFStorage} <= set(conformance.storage_sop_classes())
    assert len(IMPLEMENTATION_VERSION_NAME) <= 16


def test_generated_conformance_doc_is_current() -> None:
    doc = Path(__file__).parents[2] / "docs" / "conformance.md"
    assert doc.read_text() == conformance.conformance_markdown(), (
        "run `python -m gearview.conformance > docs/conformance.md`"
    )
