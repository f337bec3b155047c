"""The study viewer under pytest-qt (offscreen): open, scroll, W/L, presets, cine, placeholder,
SR text, PDF, presentation state, tags and layouts (tools: test_viewer_tools.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from engine.imaging_samples import make_gsps
from factory import make_ct, write_series
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QTabBar

from gearview.imaging import Window
from gearview.ui.viewer import ViewerWindow

pytestmark = pytest.mark.timeout(60)


def _add_series(cache, tmp_path: Path, n: int = 5, **kw) -> str:
    study_uid = kw.pop("study_uid", None) or generate_uid()
    for path in write_series(tmp_path / generate_uid(), n, study_uid=study_uid, **kw):
        cache.add_file(path, "TEST")
    return study_uid


def _wait_frame(qtbot, viewport, position: int | None = None):
    def shown():
        last = viewport.last
        assert last is not None
        if position is not None:
            assert viewport.series.slices[position][0] == viewport.series.instances.index(
                last.record
            )

    qtbot.waitUntil(shown, timeout=10000)
    return viewport.last


def test_open_scroll_and_window(qtbot, viewer_for, cache, tmp_path):
    study = _add_series(cache, tmp_path, 5)
    viewer = viewer_for(study)
    vp = viewer.active
    result = _wait_frame(qtbot, vp, 2)
    assert vp.count == 5 and vp.position == 2  # opens in the middle
    assert result.image is not None and result.rendered.window == Window(40.0, 400.0)
    qtbot.waitUntil(lambda: vp.view.paint_count > 0)
    assert "Im: 3/5" in vp.view.corners[2] and "W: 400  L: 40" in vp.view.corners[2]
    assert "Test, Patient" in vp.view.corners[0]

    qtbot.keyClick(vp.view, Qt.Key.Key_Down)
    qtbot.waitUntil(lambda: vp.last.record.instance_number == 4, timeout=10000)
    assert viewer.slider.value() == 3
    viewer.slider.setValue(0)
    qtbot.waitUntil(lambda: vp.last.record.instance_number == 1, timeout=10000)

    before = vp.last.rendered.pixels.copy()
    qtbot.mousePress(vp.view, Qt.MouseButton.LeftButton, pos=vp.view.rect().center())
    qtbot.mouseMove(vp.view, vp.view.rect().center() + vp.view.rect().topLeft().__class__(60, 30))
    qtbot.mouseRelease(vp.view, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: vp.last.rendered.window != Window(40.0, 400.0), timeout=10000)
    assert vp.last.rendered.window.width > 400
    assert not np.array_equal(before, vp.last.rendered.pixels)

    viewer.apply_preset(2)  # CT lung
    qtbot.waitUntil(lambda: vp.last.rendered.window.center == -600, timeout=10000)
    viewer.apply_preset(6)  # the file's own first window
    qtbot.waitUntil(lambda: vp.last.rendered.window == Window(40.0, 400.0), timeout=10000)


def test_cine_plays_and_stops(qtbot, viewer_for, cache, tmp_path):
    viewer = viewer_for(_add_series(cache, tmp_path, 6))
    vp = viewer.active
    _wait_frame(qtbot, vp)
    viewer.fps.setValue(60)
    seen = set()
    vp.position_changed.connect(seen.add)
    viewer.toggle_cine()
    assert viewer.cine.isActive()
    qtbot.waitUntil(lambda: len(seen) >= 6, timeout=10000)  # wrapped around at least once
    viewer.toggle_cine()
    assert not viewer.cine.isActive()
    stopped_at = vp.position
    qtbot.wait(100)
    assert vp.position == stopped_at


def test_corrupt_frame_shows_placeholder_rest_works(qtbot, viewer_for, cache, tmp_path):
    study = generate_uid()
    series = generate_uid()
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(1, 4):
        ds = make_ct(study, series, i)
        if i == 2:
            ds.file_meta.TransferSyntaxUID = pydicom.uid.RLELossless
            ds["PixelData"].VR = "OB"
            ds.PixelData = pydicom.encaps.encapsulate([b"\x01\0\0\0" + b"\0" * 60 + b"junk"])
        ds.save_as(folder / f"{i}.dcm", enforce_file_format=True)
        cache.add_file(folder / f"{i}.dcm", "TEST")
    viewer = viewer_for(study)
    vp = viewer.active
    qtbot.waitUntil(
        lambda: vp.last is not None and vp.last.record.instance_number == 2, timeout=10000
    )
    assert vp.last.image is None and "cannot decode RLE Lossless" in vp.view.placeholder
    vp.step(1)
    qtbot.waitUntil(lambda: vp.last.record.instance_number == 3, timeout=10000)
    assert vp.last.image is not None and vp.view.placeholder == ""


def test_sr_shows_content_tree(qtbot, viewer_for, cache):
    stored = cache.add_file(Path(get_testdata_file("test-SR.dcm", download=False)), "TEST")
    viewer = viewer_for(stored.info.study_instance_uid)
    vp = viewer.active
    qtbot.waitUntil(lambda: "Diameter: 3 Length Unit" in vp.text.toPlainText(), timeout=10000)
    assert vp.currentWidget() is vp.text


def test_pdf_opens_in_app(qtbot, viewer_for, cache, tmp_path):
    from PySide6.QtPdf import QPdfDocument

    ds = make_ct(generate_uid(), generate_uid(), 1)
    for kw in (
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "PixelData",
        "RescaleIntercept",
        "RescaleSlope",
        "WindowCenter",
        "WindowWidth",
        "PixelSpacing",
    ):
        delattr(ds, kw)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.EncapsulatedPDFStorage
    ds.Modality = "DOC"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = _tiny_pdf()
    ds.save_as(tmp_path / "doc.dcm", enforce_file_format=True)
    stored = cache.add_file(tmp_path / "doc.dcm", "TEST")
    viewer = viewer_for(stored.info.study_instance_uid)
    vp = viewer.active
    qtbot.waitUntil(
        lambda: (
            vp.pdf_document is not None and vp.pdf_document.status() == QPdfDocument.Status.Ready
        ),
        timeout=10000,
    )
    assert vp.pdf_document.pageCount() == 1 and vp.currentWidget() is vp.pdf_view


def _tiny_pdf() -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def test_layouts_tags_and_view_tools(qtbot, viewer_for, cache, tmp_path):
    study = _add_series(cache, tmp_path, 3)
    _add_series(cache, tmp_path, 2, study_uid=study, series_number=2)
    viewer = viewer_for(study)
    _wait_frame(qtbot, viewer.active)
    viewer.set_layout("2×2")
    assert sum(v.isVisible() for v in viewer.viewports) == 4
    qtbot.waitUntil(lambda: all(v.last is not None for v in viewer.viewports), timeout=10000)
    assert {v.series.record.series_instance_uid for v in viewer.viewports} == {
        s.record.series_instance_uid for s in viewer.model.series
    }
    viewer.set_active(viewer.viewports[1])
    viewer.toggle_tags()
    qtbot.waitUntil(lambda: viewer.tags.topLevelItemCount() > 10, timeout=10000)
    names = {viewer.tags.topLevelItem(i).text(1) for i in range(viewer.tags.topLevelItemCount())}
    assert {"Patient's Name", "Pixel Data", "Transfer Syntax UID"} <= names
    view = viewer.active.view
    viewer.set_layout("1×2")
    assert sum(v.isVisible() for v in viewer.viewports) == 2
    view.zoom_by(2.0)
    zoomed = view.effective_zoom()
    view.rotate(90)
    view.fit()
    assert view.zoom is None and view.effective_zoom() != zoomed
    view.actual_size()
    assert view.effective_zoom() == 1.0


def test_main_window_opens_viewer_tab_on_activation(qtbot, window, tmp_path):
    study = _add_series(window.cache, tmp_path, 3)
    before = window.tabs.count()
    window.study_activated.emit(study)
    assert window.tabs.count() == before + 1
    viewer = window.tabs.currentWidget()
    assert isinstance(viewer, ViewerWindow) and viewer.study_uid == study
    qtbot.waitUntil(lambda: viewer.active.last is not None, timeout=10000)
    window.study_activated.emit(study)  # same study again: the same tab comes forward
    assert window.tabs.count() == before + 1
    button = window.tabs.tabBar().tabButton(
        window.tabs.currentIndex(), QTabBar.ButtonPosition.RightSide
    )
    button.click()
    assert window.tabs.count() == before and viewer.pool.active == 0


def test_gsps_is_described_and_applied_to_its_image(qtbot, viewer_for, cache, tmp_path):
    study = _add_series(cache, tmp_path, 1)
    image = cache.instances(study_uid=study)[0]
    pr = make_gsps(image.sop_instance_uid, image.series_instance_uid)
    ct = make_ct(study, generate_uid(), 1)
    for kw in (
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "PixelData",
        "RescaleIntercept",
        "RescaleSlope",
        "WindowCenter",
        "WindowWidth",
        "PixelSpacing",
        "SOPClassUID",
        "InstanceNumber",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "SliceThickness",
    ):
        delattr(ct, kw)
    ct.update(pr)
    ct.SOPClassUID = ct.file_meta.MediaStorageSOPClassUID = (
        pydicom.uid.GrayscaleSoftcopyPresentationStateStorage
    )
    ct.Modality = "PR"
    ct.InstanceNumber = 1
    ct.save_as(tmp_path / "pr.dcm", enforce_file_format=True)
    cache.add_file(tmp_path / "pr.dcm", "TEST")

    viewer = viewer_for(study)
    vp = viewer.active
    qtbot.waitUntil(
        lambda: vp.last is not None and vp.last.rendered.window == Window(100.0, 50.0),
        timeout=10000,
    )
    assert len(vp.view.graphics) == 3 and vp.view.graphics[2].text == "lesion"
    pr_series = next(s for s in viewer.model.series if s.kind == "gsps")
    vp.set_series(pr_series)
    qtbot.waitUntil(lambda: "Applies to 1 image(s)" in vp.text.toPlainText(), timeout=10000)


def test_multiframe_scrolls_frames_and_decodes_off_the_gui_thread(qtbot, viewer_for, cache):
    import threading

    stored = cache.add_file(Path(get_testdata_file("emri_small.dcm", download=False)), "TEST")
    viewer = viewer_for(stored.info.study_instance_uid)
    threads = set()
    render = viewer.services.render

    def spy(*args):
        threads.add(threading.current_thread() is threading.main_thread())
        return render(*args)

    viewer.services.render = spy
    vp = viewer.active
    assert vp.count == 10
    vp.show_position(0)
    qtbot.waitUntil(lambda: vp.last is not None and vp.last.frame == 0, timeout=10000)
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent

    event = QWheelEvent(
        QPointF(10, 10),
        QPointF(10, 10),
        QPoint(0, 0),
        QPoint(0, -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    vp.view.wheelEvent(event)
    qtbot.waitUntil(lambda: vp.last.frame == 1, timeout=10000)
    assert "Fr: 2/10" in vp.view.corners[2]
    assert threads == {False}  # every render ran on a worker thread
    qtbot.waitUntil(lambda: not viewer.thumbs.item(0).icon().isNull(), timeout=10000)


def test_absurd_header_shows_cannot_display(qtbot, viewer_for, cache, tmp_path):
    """A file that changed on disk after indexing (the cache refuses such files on import)."""
    ds = make_ct(generate_uid(), generate_uid(), 1)
    ds.save_as(tmp_path / "ok.dcm", enforce_file_format=True)
    stored = cache.add_file(tmp_path / "ok.dcm", "TEST")
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 100000
    ds.save_as(stored.path, enforce_file_format=True)
    viewer = viewer_for(stored.info.study_instance_uid)
    vp = viewer.active
    qtbot.waitUntil(lambda: vp.last is not None, timeout=10000)
    assert vp.last.image is None and "cannot display: one frame would need" in vp.view.placeholder


def test_open_viewer_follows_new_instances(qtbot, window, tmp_path):
    study = generate_uid()
    series = generate_uid()
    first = make_ct(study, series, 1)
    first.save_as(tmp_path / "1.dcm", enforce_file_format=True)
    window.cache.add_file(tmp_path / "1.dcm", "TEST")
    window.study_activated.emit(study)
    viewer = window.tabs.currentWidget()
    qtbot.waitUntil(lambda: viewer.active.last is not None, timeout=10000)
    assert viewer.active.count == 1
    second = make_ct(study, series, 2)
    second.save_as(tmp_path / "2.dcm", enforce_file_format=True)
    window.cache.add_file(tmp_path / "2.dcm", "TEST")
    qtbot.waitUntil(lambda: viewer.active.count == 2, timeout=10000)
    assert viewer.slider.maximum() == 1


def test_overlays_drawn_and_toggled(qtbot, viewer_for, cache):
    path = Path(get_testdata_file("MR-SIEMENS-DICOM-WithOverlays.dcm", download=False))
    stored = cache.add_file(path, "TEST")
    viewer = viewer_for(stored.info.study_instance_uid)
    vp = viewer.active
    qtbot.waitUntil(lambda: vp.last is not None and vp.last.rendered is not None, timeout=10000)
    with_overlay = vp.last.rendered.pixels.copy()
    viewer.toggle_overlays()
    qtbot.waitUntil(
        lambda: (
            not vp.overlays
            and vp.last.rendered.pixels is not None
            and not np.array_equal(vp.last.rendered.pixels, with_overlay)
        ),
        timeout=10000,
    )
    assert (with_overlay == 255).sum() > (vp.last.rendered.pixels == 255).sum()


def test_a_viewer_tab_never_reads_the_index_on_the_gui_thread(qtbot, window, tmp_path, monkeypatch):
    import threading

    from gearview.edit.study_edit import edit_study

    study = _add_series(window.cache, tmp_path, 2, patient_name="Before^Edit")
    index = window.cache.index
    original = index.get
    gui_reads: list[str] = []
    recording = [True]

    def get():
        if recording[0] and threading.current_thread() is threading.main_thread():
            gui_reads.append("read")
        return original()

    monkeypatch.setattr(index, "get", get)
    window.study_activated.emit(study)
    viewer = window.tabs.currentWidget()
    tab = window.tabs.indexOf(viewer)
    qtbot.waitUntil(lambda: window.tabs.tabText(tab) == "Before^Edit", timeout=10000)
    qtbot.waitUntil(lambda: viewer.active.last is not None, timeout=10000)
    assert gui_reads == []
    recording[0] = False
    edit_study(window.cache, study, {"PatientName": "After^Edit"})
    recording[0] = True
    qtbot.waitUntil(lambda: window.tabs.tabText(tab) == "After^Edit", timeout=10000)
    assert gui_reads == []
