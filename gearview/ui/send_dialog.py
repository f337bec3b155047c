""" "Send to…": pick a destination for the selected local studies and queue the send.

The destination list holds the nodes with the `send` role, the configured
default destination preselected. The send itself is a persistent job (the
Activity panel shows its per-instance results and offers Retry). With the
De-identify box ticked the node receives a de-identified copy.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QWidget

from gearview.config import Config, Node
from gearview.deid import DeidOptions
from gearview.jobqueue import SEND
from gearview.net.tasks import send_params
from gearview.store import Cache
from gearview.ui.deid_options import DeidentifyBox


def send_nodes(config: Config) -> list[Node]:
    return [n for n in config.nodes if "send" in n.roles]


class SendDialog(QDialog):
    """Destination picker for a list of studies."""

    def __init__(
        self,
        config: Config,
        study_uids: list[str],
        parent: QWidget | None = None,
        cache: Cache | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Send to")
        self.study_uids = list(study_uids)
        self.destination = QComboBox(self)
        for node in send_nodes(config):
            self.destination.addItem(f"{node.name}  ({node.address})", node.name)
        default = config.client.default_send_destination
        if default:
            index = self.destination.findData(
                config.node(default).name if config.node(default) else default
            )
            if index >= 0:
                self.destination.setCurrentIndex(index)
        count = len(self.study_uids)
        self.summary = QLabel(f"{count} stud{'y' if count == 1 else 'ies'} selected", self)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Send")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QFormLayout(self)
        layout.addRow(self.summary)
        layout.addRow("Destination", self.destination)
        if not self.destination.count():
            layout.addRow(QLabel("No node with the 'send' role: add one in Settings.", self))
        self.deid = DeidentifyBox(cache, self.study_uids, parent=self) if cache else None
        if self.deid is not None:
            layout.addRow(self.deid)
            self.deid.changed.connect(self._update_ok)
        layout.addRow(self.buttons)
        self._update_ok()

    def _update_ok(self) -> None:
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        ready = self.deid is None or self.deid.ready()
        ok.setEnabled(bool(self.destination.count() and self.study_uids and ready))

    def deidentify(self) -> DeidOptions | None:
        return self.deid.options() if self.deid is not None else None

    def done(self, result: int) -> None:  # noqa: D401 - Qt override
        if self.deid is not None:
            self.deid.shutdown()
        super().done(result)

    def chosen_node(self) -> str | None:
        return self.destination.currentData()


def queue_send(
    window: Any, node: str, study_uids: list[str], deidentify: DeidOptions | None = None
) -> str:
    """Queue a send job for the studies (a de-identified copy when asked); returns the job id."""
    what = f"{len(study_uids)} stud{'y' if len(study_uids) == 1 else 'ies'}"
    title = f"Send {what}{' de-identified' if deidentify else ''} to {node}"
    return window.station.jobs.submit(SEND, title, send_params(node, study_uids, deidentify)).id


def open_send_dialog(window: Any, study_uids: list[str]) -> SendDialog | None:
    """Show the dialog (non-modal) for the selected studies; queue the send on OK."""
    if not study_uids:
        window.statusBar().showMessage("Select one or more studies to send", 5000)
        return None
    dialog = SendDialog(window.config, study_uids, window, cache=window.cache)

    def accepted() -> None:
        node = dialog.chosen_node()
        if node:
            queue_send(window, node, dialog.study_uids, dialog.deidentify())
            window.statusBar().showMessage(f"Send to {node} queued - see Activity", 5000)

    dialog.accepted.connect(accepted)
    dialog.open()
    window.send_dialog = dialog
    return dialog


def install(window: Any) -> None:
    """ "Send to…" on the selected studies (Study menu and context menu)."""
    window.add_study_action(
        "Send to…", lambda uids: open_send_dialog(window, uids), shortcut="Ctrl+Shift+S"
    )
