"""The damaged-index dialog, shared by startup (app.py) and the running window.

The index is a cache of the image files, so the remedy is always the same:
rebuild it from the files. The dialog says plainly that no image file is
deleted (the damaged index is moved aside, not removed).
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from gearview.errors import GearviewError

REBUILD_TEXT = "Rebuild index from files"


def ask_rebuild(
    error: GearviewError | Exception, parent: QWidget | None = None, reject_text: str = "Quit"
) -> bool:
    """Ask whether to rebuild the index; True when the user chose to."""
    message = error.message if isinstance(error, GearviewError) else str(error)
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("gearview — the local index is damaged")
    box.setText("The index of the local image cache cannot be read.")
    box.setInformativeText(
        f"{message}\n\ngearview can rebuild the index from the image files. No image file "
        "is deleted: the damaged index is kept beside the new one for inspection."
    )
    rebuild = box.addButton(REBUILD_TEXT, QMessageBox.ButtonRole.AcceptRole)
    box.addButton(reject_text, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(rebuild)
    box.exec()
    return box.clickedButton() is rebuild
