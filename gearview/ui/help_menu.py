"""Help ▸ User guide and Help ▸ Keyboard shortcuts.

The user guide is `docs/user-guide.md` rendered (Markdown, with its
screenshots): from the source tree, or the copy a packaged gearview carries
in `docs/` beside its executable. The file and its images are read on a
worker. The shortcuts window lists every menu and toolbar action that has a
key — read from the actions themselves, so it cannot drift from the code —
followed by the viewer's keys as the guide's Viewer section lists them.
"""

from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import qtawesome as qta
from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QAction, QImage, QKeySequence, QTextDocument
from PySide6.QtWidgets import QDialog, QMenu, QMessageBox, QTextBrowser, QVBoxLayout, QWidget

GUIDE_NAME = "user-guide.md"
#: Screenshots are shown at most this wide (the guide window is ~860 px).
IMAGE_WIDTH = 800
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s")
#: Where the guide lists the viewer's keys.
VIEWER_SECTION = ("### Keyboard shortcuts", "## Viewer")


def guide_candidates() -> list[Path]:
    """Where the guide may be: the source tree, then beside a packaged executable."""
    here = Path(__file__).resolve().parents[2] / "docs"
    exe = Path(sys.executable).resolve().parent
    return [d / GUIDE_NAME for d in (here, exe / "docs", exe.parent / "Resources" / "docs")]


@dataclass
class Guide:
    path: Path
    text: str
    images: dict[str, QImage] = field(default_factory=dict)


def read_guide(with_images: bool = True) -> Guide | None:
    """Worker side: the guide's text and its images decoded (None when not installed)."""
    for path in guide_candidates():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        images = {}
        if with_images:
            for name in dict.fromkeys(_IMAGE.findall(text)):
                image = QImage(str(path.parent / name))
                if not image.isNull():
                    images[name] = (
                        image.scaledToWidth(IMAGE_WIDTH, Qt.TransformationMode.SmoothTransformation)
                        if image.width() > IMAGE_WIDTH
                        else image
                    )
        return Guide(path, text, images)
    return None


def section(text: str, heading: str, within: str = "") -> str:
    """The Markdown under `heading` (the first after `within`, when given) up to the next
    heading; empty when absent."""
    lines = text.splitlines()
    try:
        start = lines.index(within) if within else 0
        start = lines.index(heading, start) + 1
    except ValueError:
        return ""
    end = next((i for i in range(start, len(lines)) if _HEADING.match(lines[i])), len(lines))
    return "\n".join(lines[start:end]).strip()


def shortcut_rows(window: Any) -> list[tuple[str, str, str]]:
    """(menu, action, keys) for every menu action with a shortcut, in menu order."""
    rows: list[tuple[str, str, str]] = []

    def visit(menu: QMenu, path: str) -> None:
        for action in menu.actions():
            if action.menu() is not None:
                visit(action.menu(), f"{path} ▸ {_plain(action.text())}")
            elif not action.shortcut().isEmpty():
                keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
                rows.append((path, _plain(action.text()), keys))

    for top in window.menuBar().actions():
        if top.menu() is not None:
            visit(top.menu(), _plain(top.text()))
    return rows


def _plain(text: str) -> str:
    return text.replace("&", "")


def shortcuts_html(window: Any, viewer_keys: str) -> str:
    cells = "".join(
        f"<tr><td>{html.escape(menu)}</td><td>{html.escape(name)}</td>"
        f"<td><b>{html.escape(keys)}</b></td></tr>"
        for menu, name, keys in shortcut_rows(window)
    )
    page = (
        "<h2>Main window</h2><table cellpadding='4'>"
        "<tr><th align='left'>Menu</th><th align='left'>Action</th>"
        f"<th align='left'>Keys</th></tr>{cells}</table>"
    )
    if viewer_keys:
        document = QTextDocument()
        document.setMarkdown(viewer_keys)
        page += "<h2>In the viewer</h2>" + document.toHtml()
    return page


class GuideBrowser(QTextBrowser):
    """Serves the guide's images from memory (read on a worker), never from disk."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.images: dict[str, QImage] = {}

    def loadResource(self, kind: int, url: QUrl | str) -> Any:  # noqa: N802
        if kind == QTextDocument.ResourceType.ImageResource.value:
            return self.images.get(url.toString() if isinstance(url, QUrl) else url)
        return super().loadResource(kind, url)


class TextWindow(QDialog):
    """A resizable, non-modal window with a text browser."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(860, 720)
        self.browser = GuideBrowser(self)
        self.browser.setOpenExternalLinks(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.browser)


def open_user_guide(window: Any) -> None:
    def show(guide: Guide | None) -> None:
        if guide is None:
            looked = "\n".join(str(p) for p in guide_candidates())
            QMessageBox.information(
                window, "User guide", f"The user guide is not installed here. Looked for:\n{looked}"
            )
            return
        dialog = TextWindow("gearview user guide", window)
        dialog.browser.images = guide.images
        dialog.browser.setMarkdown(guide.text)
        window.user_guide = dialog
        dialog.show()

    window.pool.submit(read_guide, on_result=show, on_error=lambda _e: show(None))


def open_shortcuts(window: Any) -> None:
    def show(guide: Guide | None) -> None:
        dialog = TextWindow("Keyboard shortcuts", window)
        dialog.resize(620, 640)
        viewer = section(guide.text, *VIEWER_SECTION) if guide is not None else ""
        dialog.browser.setHtml(shortcuts_html(window, viewer))
        window.shortcuts_window = dialog
        dialog.show()

    window.pool.submit(read_guide, False, on_result=show, on_error=lambda _e: show(None))


def install(window: Any) -> None:
    """Help ▸ User guide (F1) and Help ▸ Keyboard shortcuts (Ctrl+/), above About."""
    menu = window.menu("&Help")
    first = menu.actions()[0] if menu.actions() else None
    guide = QAction(qta.icon("mdi6.book-open-variant"), "&User guide", window)
    guide.setObjectName("user-guide")
    guide.setShortcut(QKeySequence(QKeySequence.StandardKey.HelpContents))
    guide.triggered.connect(lambda: open_user_guide(window))
    keys = QAction(qta.icon("mdi6.keyboard"), "&Keyboard shortcuts", window)
    keys.setObjectName("keyboard-shortcuts")
    keys.setShortcut(QKeySequence("Ctrl+/"))
    keys.triggered.connect(lambda: open_shortcuts(window))
    menu.insertActions(first, [guide, keys])
    if first is not None:
        menu.insertSeparator(first)
