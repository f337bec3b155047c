"""The viewer's tools under pytest-qt (offscreen): measurements tied to their frame, angle
and ROI statistics, tool keys and the toolbar, presets by modality, integer W/L,
synchronised scrolling and reference lines."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from factory import make_ct
from pydicom.uid import generate_uid
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QAction, QKeySequence

from gearview.imaging.geometry import reference_line
from gearview.imaging.measure import ANGLE, DISTANCE, ELLIPSE, RECTANGLE, labels
from gearview.ui.viewer.controls import TOOLS
from gearview.ui.viewer.image_view import MEASURE_COLOUR, REFERENCE_COLOUR

pytestmark = pytest.mark.timeout(60)

AXIAL = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
SAGITTAL = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]


def _series(
    cache,
    tmp_path: Path,
    study: str,
    origins: list[tuple[float, float, float]],
    orientation: list[float] = AXIAL,
    frame_of_reference: str = "1.2.826.0.1.3680043.8.498.1",
    number: int = 1,
    **kw,
) -> str:
    """A series with one slice per origin, in that order (Instance Number 1, 2, ...)."""
    series = generate_uid()
    folder = tmp_path / series
    folder.mkdir()
    for i, origin in enumerate(origins, 1):
        ds = make_ct(study, series, i, series_number=number, **kw)
        ds.ImagePositionPatient = list(origin)
        ds.ImageOrientationPatient = orientation
        ds.FrameOfReferenceUID = frame_of_reference
        ds.save_as(folder / f"{i}.dcm", enforce_file_format=True)
        cache.add_file(folder / f"{i}.dcm", "TEST")
    return series


def _axial(cache, tmp_path, study, n=5, **kw) -> str:
    return _series(cache, tmp_path, study, [(-16.0, -16.0, float(z)) for z in range(n)], **kw)


def _one_series(qtbot, viewer_for, cache, tmp_path, n: int):
    """A viewer of one axial series of `n` slices, its middle slice shown."""
    study = generate_uid()
    _axial(cache, tmp_path, study, n)
    viewer = viewer_for(study)
    _shown(qtbot, viewer.active, n // 2)
    return viewer, viewer.active.view


def _shown(qtbot, viewport, position: int):
    """Wait until slice `position` of the viewport's series is on screen."""

    def ready():
        assert viewport.last is not None
        record, frame = viewport.series.slice(position)
        shown = viewport.last
        assert (shown.record.sop_instance_uid, shown.frame) == (record.sop_instance_uid, frame)
        assert viewport.view.image is not None

    qtbot.waitUntil(ready, timeout=10000)
    return viewport.last


def _drag(qtbot, view, start: QPoint, end: QPoint) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view, (start + end) / 2)
    qtbot.mouseMove(view, end)
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=end)


def _colour_pixels(view, colour) -> int:
    image = view.grab().toImage()
    target = colour.rgb()
    return sum(
        image.pixel(x, y) == target
        for y in range(0, image.height(), 2)
        for x in range(0, image.width(), 2)
    )


def test_a_distance_stays_on_the_frame_it_was_drawn_on(qtbot, viewer_for, cache, tmp_path):
    viewer, view = _one_series(qtbot, viewer_for, cache, tmp_path, 5)
    vp = viewer.active
    qtbot.keyClick(view, Qt.Key.Key_M)
    assert view.tool == DISTANCE
    centre = view.rect().center()
    _drag(qtbot, view, centre, centre + QPoint(120, 0))
    assert [m.kind for m in view.measurements] == [DISTANCE]
    drawn = list(view.measurements[0].points)
    assert _colour_pixels(view, MEASURE_COLOUR) > 0

    vp.show_position(4)
    _shown(qtbot, vp, 4)
    assert view.measurements == [] and _colour_pixels(view, MEASURE_COLOUR) == 0
    vp.show_position(2)
    _shown(qtbot, vp, 2)
    assert [m.points for m in view.measurements] == [drawn]
    assert _colour_pixels(view, MEASURE_COLOUR) > 0
    clash = QAction("Delete studies", viewer)  # as the main window's Delete
    clash.setShortcut(QKeySequence.StandardKey.Delete)
    viewer.addAction(clash)
    triggered = []
    clash.triggered.connect(lambda: triggered.append(True))
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert view.measurements == [] and triggered == []
    vp.show_position(4)
    _shown(qtbot, vp, 4)
    vp.show_position(2)
    _shown(qtbot, vp, 2)
    assert view.measurements == []  # deleted for good


def test_each_tool_key_checks_its_toolbar_button(qtbot, viewer_for, cache, tmp_path):
    viewer, view = _one_series(qtbot, viewer_for, cache, tmp_path, 2)
    for _, _, tool, key in reversed(TOOLS):
        qtbot.keyClick(view, getattr(Qt.Key, f"Key_{key}"))
        checked = [t for t, action in viewer.tool_actions.items() if action.isChecked()]
        assert checked == [tool] and view.tool == tool


def test_rectangle_and_ellipse_rois_give_mean_sd_and_area_in_hu(
    qtbot, viewer_for, cache, tmp_path
):
    viewer, view = _one_series(qtbot, viewer_for, cache, tmp_path, 1)
    hu = pydicom.dcmread(viewer.active.last.record.path).pixel_array.astype(np.float64) - 1024
    for key, kind in ((Qt.Key.Key_B, RECTANGLE), (Qt.Key.Key_E, ELLIPSE)):
        qtbot.keyClick(view, key)
        start, end = view.rect().center() - QPoint(80, 60), view.rect().center() + QPoint(80, 60)
        _drag(qtbot, view, start, end)
        roi = view.measurements[-1]
        assert roi.kind == kind
        qtbot.waitUntil(lambda roi=roi: roi.stats is not None, timeout=10000)
        (x0, y0), (x1, y1) = roi.points
        ys, xs = np.mgrid[0:64, 0:64] + 0.5
        if kind == RECTANGLE:
            inside = (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)
        else:
            cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
            inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1
        assert roi.stats.pixels == inside.sum()
        assert roi.stats.mean == pytest.approx(hu[inside].mean())
        assert roi.stats.sd == pytest.approx(hu[inside].std())
    rectangle = view.measurements[0]
    lines = labels(rectangle, view.pixel_spacing)
    assert lines[0].startswith("mean ") and " HU  SD " in lines[0]
    width, height = (abs(b - a) * 0.5 for a, b in zip(*rectangle.points, strict=True))
    assert lines[1] == f"area {width * height:.1f} mm²"


def test_an_angle_is_one_drag_and_one_click(qtbot, viewer_for, cache, tmp_path):
    viewer, view = _one_series(qtbot, viewer_for, cache, tmp_path, 1)
    qtbot.keyClick(view, Qt.Key.Key_N)
    vertex = view.rect().center()
    _drag(qtbot, view, vertex + QPoint(100, 0), vertex)
    assert view.measurements == [] and view.drawing is not None  # waiting for the third point
    qtbot.mouseMove(view, vertex + QPoint(0, -80))
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=vertex + QPoint(0, -80))
    (angle,) = view.measurements
    assert angle.kind == ANGLE and len(angle.points) == 3
    assert labels(angle, view.pixel_spacing) == ["90.0°"]
    qtbot.keyClick(view, Qt.Key.Key_N)
    qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=vertex)
    qtbot.keyClick(view, Qt.Key.Key_Escape)
    assert view.drawing is None and len(view.measurements) == 1


def test_presets_follow_the_modality_and_wl_shows_integers(qtbot, viewer_for, cache, tmp_path):
    study = generate_uid()
    _axial(cache, tmp_path, study, 3, modality="MR")
    viewer = viewer_for(study)
    vp = viewer.active
    _shown(qtbot, vp, 1)
    offered = [viewer.preset_box.itemText(i) for i in range(viewer.preset_box.count())]
    assert offered == ["1  File: C 40 / W 400", "2  Auto (1–99 %)", "3  Full range"]
    viewer.apply_preset(3)
    qtbot.waitUntil(
        lambda: (
            vp.last.rendered.window is not None
            and vp.last.rendered.window.explanation == "Full range"
        ),
        timeout=10000,
    )
    stored = pydicom.dcmread(vp.last.record.path).pixel_array
    window = vp.last.rendered.window
    assert window.width == stored.max() - stored.min()  # the MR's values: rescale -1024
    assert window.center == pytest.approx((stored.max() + stored.min()) / 2 - 1024)
    centre = vp.view.rect().center()
    _drag(qtbot, vp.view, centre, centre + QPoint(37, 13))
    qtbot.waitUntil(lambda: vp.last.rendered.window != window, timeout=10000)
    assert re.search(r"^W: \d+  L: -?\d+$", vp.view.corners[2], re.MULTILINE)


def test_sync_scrolls_the_other_series_to_the_nearest_position(qtbot, viewer_for, cache, tmp_path):
    study = generate_uid()
    _axial(cache, tmp_path, study, 10)  # z 0 ... 9
    reverse = [(-16.0, -16.0, 9.0 - 1.5 * i) for i in range(7)]  # z 9, 7.5 ... 0
    _series(cache, tmp_path, study, reverse, number=2)
    viewer = viewer_for(study, "1×2")
    first, second = viewer.viewports[:2]
    assert len(first.series.slices) == 10 and len(second.series.slices) == 7
    qtbot.keyClick(first.view, Qt.Key.Key_S)
    assert viewer.sync and viewer.sync_action.isChecked()
    viewer.set_active(first)
    first.show_position(4)  # z 4: the second series' z 4.5 is its 4th slice
    qtbot.waitUntil(lambda: second.position == 3, timeout=10000)
    first.step(5)  # z 9
    qtbot.waitUntil(lambda: second.position == 0, timeout=10000)
    second.step(2)  # scrolling the other viewport leads too: z 6 in the first
    qtbot.waitUntil(lambda: first.position == 6, timeout=10000)
    qtbot.keyClick(first.view, Qt.Key.Key_S)
    first.show_position(0)
    qtbot.wait(200)
    assert second.position == 2  # sync off: stays


def test_sync_leaves_a_series_of_another_frame_of_reference(qtbot, viewer_for, cache, tmp_path):
    study = generate_uid()
    _axial(cache, tmp_path, study, 6)
    _axial(cache, tmp_path, study, 6, number=2, frame_of_reference="1.2.3.999")
    viewer = viewer_for(study, "1×2")
    first, second = viewer.viewports[:2]
    _shown(qtbot, second, 3)
    viewer.toggle_sync()
    viewer.set_active(first)
    qtbot.waitUntil(
        lambda: all(viewer.geometry.get(v.series) for v in (first, second)), timeout=10000
    )
    first.show_position(0)
    qtbot.wait(200)
    assert second.position == 3


def test_reference_lines_between_axial_and_sagittal(qtbot, viewer_for, cache, tmp_path):
    study = generate_uid()
    _axial(cache, tmp_path, study, 5)  # z 0 ... 4
    sagittal = [(x, -16.0, 16.0) for x in (-8.0, 0.0, 8.0)]
    _series(cache, tmp_path, study, sagittal, orientation=SAGITTAL, number=2)
    viewer = viewer_for(study, "1×2")
    axial, side = viewer.viewports[:2]
    viewer.set_active(axial)
    _shown(qtbot, axial, 2)
    _shown(qtbot, side, 1)
    expected = reference_line(axial.last.info.plane, side.last.info.plane)
    qtbot.waitUntil(lambda: side.view.reference_lines == [expected], timeout=10000)
    (a, b) = expected
    assert a[1] == pytest.approx(b[1]) == pytest.approx(28.5)  # z 2 is 14 mm under the top
    assert axial.view.reference_lines == []
    assert _colour_pixels(side.view, REFERENCE_COLOUR) > 0
    axial.step(1)  # z 3: the line moves up 2 rows (0.5 mm each)
    qtbot.waitUntil(
        lambda: (
            side.view.reference_lines and side.view.reference_lines[0][0][1] == pytest.approx(26.5)
        ),
        timeout=10000,
    )
    viewer.set_active(side)  # now the sagittal slice cuts the axial image
    assert side.view.reference_lines == [] and len(axial.view.reference_lines) == 1
    viewer.toggle_reference_lines()
    assert axial.view.reference_lines == [] and not viewer.lines_action.isChecked()
    viewer.toggle_reference_lines()
    viewer.set_layout("1×1")
    assert all(v.view.reference_lines == [] for v in viewer.viewports)
