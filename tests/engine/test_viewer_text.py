"""What a viewer writes over and beside an image, computed without Qt: corner text,
window presets and the element tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from factory import make_ct, write_series
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from gearview.edit.tags import dataset_tree, element_tree
from gearview.imaging import RenderedFrame, Window
from gearview.imaging.corners import Place, ViewState, corner_text
from gearview.store.records import StudyRecord


def test_corners_show_patient_study_place_window_and_view() -> None:
    ds = make_ct(generate_uid(), generate_uid(), patient_name="Doe^Jane", patient_id="MRN1")
    ds.PatientBirthDate, ds.PatientSex, ds.StudyDescription = "19700101", "F", "CT HEAD"
    rendered = RenderedFrame(np.zeros((2, 2), np.uint8), Window(40, 80), 1)
    top_left, top_right, bottom_left, bottom_right = corner_text(
        ds,
        None,
        "#1 CT Axial",
        Place(image=2, images=10, frame=1, frames=3),
        rendered,
        ViewState(zoom=1.5, rotation=90, inverted=True),
    )
    assert top_left == "Doe, Jane\nMRN1\n1970-01-01 F"  # as in the study list
    assert top_right.splitlines()[0] == "CT HEAD" and top_right.endswith("#1 CT Axial")
    assert bottom_left == "Im: 3/10\nFr: 2/3\nW: 80  L: 40\ninverted"
    assert bottom_right == "Zoom: 150%  Rot: 90°"


def test_corners_fall_back_to_the_study_record_before_a_frame_arrives() -> None:
    study = StudyRecord(
        "1.2", patient_name="Roe^Rick", patient_id="P9", study_description="MR KNEE"
    )
    top_left, top_right, bottom_left, bottom_right = corner_text(
        Dataset(), study, "", None, None, ViewState(zoom=1.0)
    )
    assert top_left == "Roe, Rick\nP9"
    assert top_right == "MR KNEE"
    assert bottom_left == "" and bottom_right == "Zoom: 100%"


def test_the_tree_never_reads_pixel_data(tmp_path: Path) -> None:
    (path,) = write_series(tmp_path, 1)
    ds = pydicom.dcmread(path, defer_size=1024)
    nodes = dataset_tree(ds)
    pixel = next(n for n in nodes if n.keyword == "PixelData")
    assert pixel.name == "Pixel Data" and pixel.value.startswith("<OW") and "bytes" in pixel.value
    assert ds.get_item("PixelData", keep_deferred=True).value is None  # still on disk only
    assert nodes[0].keyword == "FileMetaInformationGroupLength" and not nodes[0].editable
    assert next(n for n in nodes if n.keyword == "PatientID").editable


def test_a_tree_cut_at_its_limit_says_so(tmp_path: Path) -> None:
    (path,) = write_series(tmp_path, 1)
    nodes = dataset_tree(pydicom.dcmread(path), limit=5)
    assert len(nodes) == 6 and nodes[-1].name == "(more elements not shown)"


def test_deep_sequences_are_summarised_not_walked(tmp_path: Path) -> None:
    ds = make_ct(generate_uid(), generate_uid())
    inner = ds
    for _ in range(40):
        item = Dataset()
        inner.ReferencedSeriesSequence = [item]
        inner = item
    path = tmp_path / "deep.dcm"
    ds.save_as(path, enforce_file_format=True)
    nodes = element_tree(path)
    depth, node = 0, next(n for n in nodes if n.keyword == "ReferencedSeriesSequence")
    while node.children and node.children[0].children:
        node = node.children[0].children[0]
        depth += 1
    assert node.name == "(nested too deep to show)" and depth < 40
