"""The safety findings of the studies about to be sent or burned, and the override.

The Send and Burn dialogs load the findings on a worker (`qc.checks`); with
findings their button becomes "Send anyway…" / "Burn anyway…", enabled only
once a reason is given. The override itself is audited by `qc.checks.guard`.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QLineEdit, QListWidget, QVBoxLayout, QWidget

from gearview.qc.checks import Finding

WARNING_STYLE = "color: #c62828; font-weight: bold;"


class FindingsPanel(QWidget):
    """Checking… / no findings / the findings plus a reason field."""

    #: the findings arrived or the reason changed
    changed = Signal()

    def __init__(self, action: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.action = action
        self.findings: list[Finding] | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("Checking the studies…")
        self.label.setWordWrap(True)
        self.list = QListWidget()
        self.list.setMaximumHeight(120)
        self.reason = QLineEdit()
        self.reason.setPlaceholderText(f"why they must be {action} anyway (goes to the audit log)")
        self.reason.textChanged.connect(lambda _t: self.changed.emit())
        for widget in (self.label, self.list, self.reason):
            layout.addWidget(widget)
        self.list.hide()
        self.reason.hide()

    def show_findings(self, findings: list[Finding]) -> None:
        self.findings = list(findings)
        if findings:
            self.label.setText(
                f"{len(findings)} safety finding(s): these studies should not be {self.action} "
                "as they are. Fix them, or give a reason to override.")
            self.label.setStyleSheet(WARNING_STYLE)
            for finding in findings:
                self.list.addItem(f"{finding.code}: {finding.message}")
        else:
            self.label.setText("No safety findings.")
        self.list.setVisible(bool(findings))
        self.reason.setVisible(bool(findings))
        self.changed.emit()

    def show_error(self, text: str) -> None:
        self.findings = None
        self.label.setText(f"The studies could not be checked: {text}")
        self.label.setStyleSheet(WARNING_STYLE)
        self.changed.emit()

    @property
    def checked(self) -> bool:
        return self.findings is not None

    @property
    def override_reason(self) -> str:
        """The reason to go ahead despite findings ("" when there are none)."""
        return self.reason.text().strip() if self.findings else ""

    @property
    def allows(self) -> bool:
        """Checked, and either clean or overridden with a reason."""
        return self.findings is not None and (not self.findings or bool(self.override_reason))
