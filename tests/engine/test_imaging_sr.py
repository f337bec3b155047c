"""SR / KOS content tree text and GSPS parsing (engine side, no Qt)."""

from __future__ import annotations

import pydicom
from engine.imaging_samples import make_gsps
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from gearview.imaging import gsps, sr
from gearview.imaging.luts import Window


def _code(meaning: str, value: str = "1", scheme: str = "99TEST") -> Sequence:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return Sequence([item])


def test_sr_content_tree_has_names_values_units_and_references():
    ds = pydicom.dcmread(get_testdata_file("test-SR.dcm", download=False))
    text = sr.content_text(ds)
    lines = text.splitlines()
    assert lines[0] == "Diagnosis"
    assert "    Completion: COMPLETE" in lines
    assert "        Diameter: 3 Length Unit" in lines  # NUM with units, nested in a container
    assert "    IMAGE: CT Image Storage 1.2.3.4.5.0 frames [5, 2]" in lines
    assert "[INFERRED FROM] Code: Inferred Sample Text" in text
    assert "see item 1.3.2" in text  # by-reference relationship


def test_key_object_selection_lists_its_images():
    kos = Dataset()
    kos.ConceptNameCodeSequence = _code("Of Interest", "113000", "DCM")
    image = Dataset()
    image.RelationshipType, image.ValueType = "CONTAINS", "IMAGE"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CTImageStorage, "1.2.3.9"
    image.ReferencedSOPSequence = Sequence([ref])
    kos.ContentSequence = Sequence([image])
    series = Dataset()
    series.SeriesInstanceUID = "1.2.3"
    series.ReferencedSOPSequence = Sequence([ref])
    study = Dataset()
    study.ReferencedSeriesSequence = Sequence([series])
    kos.CurrentRequestedProcedureEvidenceSequence = Sequence([study])
    text = sr.content_text(kos)
    assert text.splitlines()[0] == "Of Interest"
    assert "    IMAGE: CT Image Storage 1.2.3.9" in text
    assert "Series 1.2.3: CT Image Storage 1.2.3.9" in text


def test_deep_tree_is_cut_not_recursed_forever():
    root = Dataset()
    node = root
    for _ in range(200):
        child = Dataset()
        child.RelationshipType, child.ValueType = "CONTAINS", "CONTAINER"
        child.ConceptNameCodeSequence = _code("Level")
        node.ContentSequence = Sequence([child])
        node = child
    lines = sr.content_lines(root)
    assert lines[-1].text == "… (nested too deep)"
    assert max(line.depth for line in lines) == sr.MAX_DEPTH


def test_gsps_window_and_annotations_for_referenced_image():
    ds = make_gsps("1.2.3.4", "1.2.3")
    found = gsps.presentation_for(ds, "1.2.3.4", (64, 64))
    assert found is not None and found.label == "REVIEW"
    assert found.window == Window(100.0, 50.0)
    polyline, circle, text = found.annotations
    assert polyline.points == [(0.0, 0.0), (10.0, 20.0)]  # 1-based PIXEL units → 0-based
    assert len(circle.points) == 32 and circle.closed
    assert all(abs(((x - 32) ** 2 + (y - 32) ** 2) ** 0.5 - 16) < 1e-6 for x, y in circle.points)
    assert text.text == "lesion" and text.points == [(4.0, 5.0)]
    assert gsps.presentation_for(ds, "9.9.9", (64, 64)) is None
    assert "Applies to 1 image(s)" in gsps.summary(ds)
