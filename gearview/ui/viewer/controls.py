"""The viewer's toolbar and keyboard shortcuts (what each key and button does).

Both only call `ViewerWindow` methods; the widgets the window updates later
(layout and preset boxes, cine button, frame rate) come back as `Controls`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import qtawesome as qta
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence, QShortcut
from PySide6.QtWidgets import QComboBox, QLabel, QSpinBox, QToolBar

from gearview.ui.viewer.image_view import TOOL_MEASURE, TOOL_PAN, TOOL_WINDOW

if TYPE_CHECKING:
    from gearview.ui.viewer.window import ViewerWindow

LAYOUTS = {"1×1": (1, 1), "1×2": (1, 2), "2×2": (2, 2)}


@dataclass
class Controls:
    layout_box: QComboBox
    preset_box: QComboBox
    play_action: QAction
    fps: QSpinBox
    status: QLabel


def _action(
    viewer: ViewerWindow,
    bar: QToolBar,
    icon: str,
    text: str,
    slot: Callable[[], None],
    checkable: bool = False,
) -> QAction:
    action = QAction(qta.icon(icon), text, viewer)
    action.setCheckable(checkable)
    action.triggered.connect(slot)
    bar.addAction(action)
    return action


def build_toolbar(viewer: ViewerWindow) -> Controls:
    bar = QToolBar("Viewer", viewer)
    bar.setObjectName("viewer-tools")
    viewer.addToolBar(bar)
    layout_box = QComboBox(bar)
    layout_box.addItems(list(LAYOUTS))
    layout_box.currentTextChanged.connect(viewer.set_layout)
    bar.addWidget(layout_box)
    preset_box = QComboBox(bar)
    preset_box.setMinimumContentsLength(14)
    preset_box.setPlaceholderText("W/L presets (1–9)")
    preset_box.activated.connect(lambda i: viewer.apply_preset(i + 1))
    bar.addWidget(preset_box)
    tools = QActionGroup(viewer)
    for icon, text, tool in (
        ("mdi6.contrast-box", "Window/level (drag)", TOOL_WINDOW),
        ("mdi6.pan", "Pan (drag)", TOOL_PAN),
        ("mdi6.ruler", "Measure distance (drag)", TOOL_MEASURE),
    ):
        action = _action(
            viewer, bar, icon, text, lambda t=tool: viewer.set_tool(t), checkable=True
        )
        action.setChecked(tool == TOOL_WINDOW)
        tools.addAction(action)
    bar.addSeparator()
    on_view = viewer.on_view
    for icon, text, slot in (
        ("mdi6.fit-to-screen", "Fit (F)", lambda: on_view(lambda v: v.fit())),
        ("mdi6.numeric-1-box", "1:1 (A)", lambda: on_view(lambda v: v.actual_size())),
        ("mdi6.rotate-left", "Rotate left", lambda: on_view(lambda v: v.rotate(-90))),
        ("mdi6.rotate-right", "Rotate right (R)", lambda: on_view(lambda v: v.rotate(90))),
        ("mdi6.flip-horizontal", "Flip horizontal (H)", lambda: on_view(lambda v: v.flip(True))),
        ("mdi6.flip-vertical", "Flip vertical (V)", lambda: on_view(lambda v: v.flip(False))),
        ("mdi6.invert-colors", "Invert (I)", viewer.toggle_invert),
        ("mdi6.layers-off-outline", "Overlays on/off (O)", viewer.toggle_overlays),
        ("mdi6.restore", "Reset (0)", viewer.reset),
    ):
        _action(viewer, bar, icon, text, slot)
    bar.addSeparator()
    play_action = _action(
        viewer, bar, "mdi6.play", "Cine play/stop (Space)", viewer.toggle_cine, checkable=True
    )
    fps = QSpinBox(bar)
    fps.setRange(1, 120)
    fps.setValue(15)
    fps.setSuffix(" fps")
    fps.valueChanged.connect(viewer.fps_changed)
    bar.addWidget(fps)
    bar.addSeparator()
    _action(viewer, bar, "mdi6.tag-text", "Tags (T)", viewer.toggle_tags)
    status = QLabel(bar)
    bar.addWidget(status)
    return Controls(layout_box, preset_box, play_action, fps, status)


def install_shortcuts(viewer: ViewerWindow) -> None:
    on_view = viewer.on_view
    keys: list[tuple[str, Callable[[], None]]] = [
        ("Down", lambda: viewer.step(1)),
        ("Right", lambda: viewer.step(1)),
        ("Up", lambda: viewer.step(-1)),
        ("Left", lambda: viewer.step(-1)),
        ("PgDown", lambda: viewer.step(10)),
        ("PgUp", lambda: viewer.step(-10)),
        ("Home", lambda: viewer.go_to(0)),
        ("End", lambda: viewer.go_to(10**9)),
        ("F", lambda: on_view(lambda v: v.fit())),
        ("A", lambda: on_view(lambda v: v.actual_size())),
        ("R", lambda: on_view(lambda v: v.rotate(90))),
        ("H", lambda: on_view(lambda v: v.flip(True))),
        ("V", lambda: on_view(lambda v: v.flip(False))),
        ("I", viewer.toggle_invert),
        ("O", viewer.toggle_overlays),
        ("T", viewer.toggle_tags),
        ("Space", viewer.toggle_cine),
        ("0", viewer.reset),
        ("M", lambda: viewer.set_tool(TOOL_MEASURE)),
        ("Ctrl++", lambda: on_view(lambda v: v.zoom_by(1.25))),
        ("Ctrl+-", lambda: on_view(lambda v: v.zoom_by(0.8))),
    ]
    keys += [(str(n), lambda n=n: viewer.apply_preset(n)) for n in range(1, 10)]
    for key, slot in keys:
        shortcut = QShortcut(QKeySequence(key), viewer)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(slot)
