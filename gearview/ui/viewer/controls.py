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

from gearview.ui.viewer.image_view import (
    TOOL_ANGLE,
    TOOL_DISTANCE,
    TOOL_ELLIPSE,
    TOOL_PAN,
    TOOL_RECTANGLE,
    TOOL_WINDOW,
)

if TYPE_CHECKING:
    from gearview.ui.viewer.window import ViewerWindow

LAYOUTS = {"1×1": (1, 1), "1×2": (1, 2), "2×2": (2, 2)}
#: (icon, text with its key, tool, key).
TOOLS = (
    ("mdi6.contrast-box", "Window/level (W, drag)", TOOL_WINDOW, "W"),
    ("mdi6.pan", "Pan (P, drag)", TOOL_PAN, "P"),
    ("mdi6.ruler", "Distance (M, drag)", TOOL_DISTANCE, "M"),
    ("mdi6.angle-acute", "Angle (N: drag one arm, click the end of the other)", TOOL_ANGLE, "N"),
    ("mdi6.rectangle-outline", "Rectangle ROI (B, drag)", TOOL_RECTANGLE, "B"),
    ("mdi6.ellipse-outline", "Ellipse ROI (E, drag)", TOOL_ELLIPSE, "E"),
)


@dataclass
class Controls:
    layout_box: QComboBox
    preset_box: QComboBox
    play_action: QAction
    fps: QSpinBox
    status: QLabel
    tools: dict[str, QAction]
    sync_action: QAction
    lines_action: QAction


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
    group = QActionGroup(viewer)
    tools = {}
    for icon, text, tool, _ in TOOLS:
        action = _action(viewer, bar, icon, text, lambda t=tool: viewer.set_tool(t), checkable=True)
        action.setChecked(tool == TOOL_WINDOW)
        group.addAction(action)
        tools[tool] = action
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
    sync_action = _action(
        viewer,
        bar,
        "mdi6.link-variant",
        "Synchronised scrolling of series in the same frame of reference (S)",
        viewer.toggle_sync,
        checkable=True,
    )
    lines_action = _action(
        viewer,
        bar,
        "mdi6.vector-line",
        "Reference lines of the active slice in the other viewports (L)",
        viewer.toggle_reference_lines,
        checkable=True,
    )
    lines_action.setChecked(True)
    _action(viewer, bar, "mdi6.tag-text", "Tags (T)", viewer.toggle_tags)
    status = QLabel(bar)
    bar.addWidget(status)
    return Controls(
        layout_box, preset_box, play_action, fps, status, tools, sync_action, lines_action
    )


def install_shortcuts(viewer: ViewerWindow) -> None:
    """The viewer's keys (Delete, Backspace and Escape are the image view's own: EDIT_KEYS)."""
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
        ("S", viewer.toggle_sync),
        ("L", viewer.toggle_reference_lines),
        ("Ctrl++", lambda: on_view(lambda v: v.zoom_by(1.25))),
        ("Ctrl+-", lambda: on_view(lambda v: v.zoom_by(0.8))),
    ]
    keys += [(key, lambda t=tool: viewer.set_tool(t)) for _, _, tool, key in TOOLS]
    keys += [(str(n), lambda n=n: viewer.apply_preset(n)) for n in range(1, 10)]
    for key, slot in keys:
        shortcut = QShortcut(QKeySequence(key), viewer)
        shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(slot)
