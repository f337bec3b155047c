""" "Send to…": pick a destination for the selected local studies and queue the send.

The destination list holds the nodes with the `send` role, the configured
default destination preselected. The studies are checked first (`qc.checks`,
on a worker): with findings the button is "Send anyway…" and needs a reason,
which is audited. The send itself is a persistent job (the Activity panel
shows its per-instance results and offers Retry). With the De-identify box
ticked the node receives a de-identified copy.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QWidget

from gearview.config import Config, Node
from gearview.deid import DeidOptions
from gearview.errors import describe_error
from gearview.jobqueue import SEND
from gearview.net.tasks import send_params
from gearview.qc.checks import check_studies, guard
from gearview.store import Cache
from gearview.ui.deid_options import DeidentifyBox
from gearview.ui.findings_panel import FindingsPanel
from gearview.ui.workers import WorkerPool


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
        pool: WorkerPool | None = None,
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
        self.checks = FindingsPanel("sent", self)
        layout.addRow(self.checks)
        layout.addRow(self.buttons)
        self.checks.changed.connect(self._update_ok)
        if cache is not None and pool is not None:
            pool.submit(check_studies, cache, self.study_uids,
                        on_result=self.checks.show_findings,
                        on_error=lambda exc: self.checks.show_error(describe_error(exc)))
        else:
            self.checks.show_findings([])
        self._update_ok()

    @property
    def send_button(self) -> Any:
        return self.buttons.button(QDialogButtonBox.StandardButton.Ok)

    def _update_ok(self) -> None:
        deidentified = self.deid is not None and self.deid.options() is not None
        ready = (self.deid is None or self.deid.ready()) and (
            self.checks.allows or (deidentified and self.checks.checked))
        self.send_button.setText("Send anyway…" if self.checks.findings else "Send")
        self.send_button.setEnabled(bool(self.destination.count() and self.study_uids and ready))

    def accept(self) -> None:  # noqa: D401 - Qt override
        if self.send_button.isEnabled():  # never without a reason when there are findings
            super().accept()

    def deidentify(self) -> DeidOptions | None:
        return self.deid.options() if self.deid is not None else None

    def done(self, result: int) -> None:  # noqa: D401 - Qt override
        if self.deid is not None:
            self.deid.shutdown()
        super().done(result)

    def chosen_node(self) -> str | None:
        return self.destination.currentData()


def queue_send(
    window: Any,
    node: str,
    study_uids: list[str],
    deidentify: DeidOptions | None = None,
    override_reason: str = "",
) -> str:
    """Queue a send job for the studies (a de-identified copy when asked); returns the job id."""
    what = f"{len(study_uids)} stud{'y' if len(study_uids) == 1 else 'ies'}"
    title = f"Send {what}{' de-identified' if deidentify else ''} to {node}"
    params = send_params(node, study_uids, deidentify, override_reason)
    return window.station.jobs.submit(SEND, title, params).id


def open_send_dialog(window: Any, study_uids: list[str]) -> SendDialog | None:
    """Show the dialog (non-modal) for the selected studies; queue the send on OK."""
    if not study_uids:
        window.statusBar().showMessage("Select one or more studies to send", 5000)
        return None
    dialog = SendDialog(window.config, study_uids, window, cache=window.cache, pool=window.pool)

    def queued(node: str, deidentify: DeidOptions | None, reason: str) -> None:
        queue_send(window, node, dialog.study_uids, deidentify, reason)
        window.statusBar().showMessage(f"Send to {node} queued - see Activity", 5000)

    def accepted() -> None:
        node = dialog.chosen_node()
        deidentify, reason = dialog.deidentify(), dialog.checks.override_reason
        if not node:
            return
        if not reason or deidentify is not None:
            queued(node, deidentify, "")
            return
        window.pool.submit(
            lambda: guard(window.cache, dialog.study_uids, "send", target=node, force=True,
                          reason=reason),
            on_result=lambda _findings: queued(node, deidentify, reason),
            on_error=lambda exc: window.statusBar().showMessage(
                f"Not sent: {describe_error(exc)}", 8000),
        )

    dialog.accepted.connect(accepted)
    dialog.open()
    window.send_dialog = dialog
    return dialog


def install(window: Any) -> None:
    """ "Send to…" on the selected studies (Study menu and context menu)."""
    window.add_study_action(
        "Send to…", lambda uids: open_send_dialog(window, uids), shortcut="Ctrl+Shift+S"
    )
