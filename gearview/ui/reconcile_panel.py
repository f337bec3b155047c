"""Reconcile widgets (IHE IRWF): one row per outside patient of an import, and a picker
that fills the Edit study form from a worklist order or a looked-up local patient.

Lookups (cache, `query` nodes, worklist) run on the caller's worker pool; the
widgets only show what comes back.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from gearview.config import Config
from gearview.display import format_date, format_person_name
from gearview.errors import GearviewError, describe_error
from gearview.identity.lookup import (
    Candidate,
    LookupResult,
    PatientIdentity,
    find_candidates,
    order_candidate,
)
from gearview.media.reconcile import OutsidePatient, Reconcile, Target
from gearview.net.worklist import WorklistQuery, find_order, find_worklist, worklist_nodes
from gearview.ui.workers import WorkerPool

log = logging.getLogger(__name__)
KEEP = "keep"
MANUAL = "manual"


def _errors_text(result: LookupResult) -> str:
    return "; ".join(f"{name}: {error}" for name, error in result.errors.items())


class ReconcileRow(QWidget):
    """One outside patient: keep it, type a local ID, or pick a candidate / an order."""

    def __init__(
        self, patient: OutsidePatient, pool: WorkerPool, config: Config, parent: QWidget | None
    ) -> None:
        super().__init__(parent)
        self.patient = patient
        self.pool = pool
        self.config = config
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        who = patient.identity
        self.outside = QLabel(
            f"<b>{html.escape(format_person_name(who.name))}</b> ({html.escape(who.patient_id)}"
            f"{' @ ' + html.escape(who.issuer) if who.issuer else ''}) "
            f"{format_date(who.birth_date)} {html.escape(who.sex)} — "
            f"{patient.instances} instance(s)"
        )
        self.outside.setToolTip(f"{who.name} {who.birth_date}")
        self.choice = QComboBox()
        self.choice.setMinimumWidth(420)
        self.choice.addItem("Keep the outside identity", KEEP)
        self.choice.addItem(
            "Local patient ID (name, birth date, sex from the local record)…", MANUAL
        )
        self.choice.currentIndexChanged.connect(self._chosen)
        self.patient_id = QLineEdit()
        self.patient_id.setPlaceholderText("local Patient ID")
        self.issuer = QLineEdit()
        self.issuer.setPlaceholderText("issuer")
        self.accession = QLineEdit()
        self.accession.setPlaceholderText("accession number")
        self.match_button = QPushButton("Match to order")
        self.match_button.clicked.connect(self.match_order)
        self.match_button.setEnabled(bool(worklist_nodes(config)))
        self.status = QLabel("looking up the local patient…")
        self.status.setWordWrap(True)
        layout.addWidget(self.outside, 0, 0, 1, 4)
        layout.addWidget(self.choice, 1, 0, 1, 4)
        layout.addWidget(self.patient_id, 2, 0)
        layout.addWidget(self.issuer, 2, 1)
        layout.addWidget(self.accession, 2, 2)
        layout.addWidget(self.match_button, 2, 3)
        layout.addWidget(self.status, 3, 0, 1, 4)
        self._chosen()

    # ---- candidates ---------------------------------------------------------

    def add_candidates(self, candidates: list[Candidate], select_first: bool = False) -> None:
        for candidate in candidates:
            self.choice.addItem(candidate.label(), candidate)
        if select_first and candidates:
            self.choice.setCurrentIndex(self.choice.count() - len(candidates))

    def show_lookup(self, result: LookupResult) -> None:
        self.add_candidates(result.candidates)
        found = len(result.candidates)
        text = f"{found} candidate(s) found" if found else "no local patient found"
        if result.errors:
            text += f" (not reachable: {_errors_text(result)})"
        self.status.setText(text)

    def lookup_failed(self, exc: BaseException) -> None:
        self.status.setText(f"lookup failed: {describe_error(exc)}")

    def candidates(self) -> list[Candidate]:
        return [
            self.choice.itemData(i)
            for i in range(self.choice.count())
            if isinstance(self.choice.itemData(i), Candidate)
        ]

    def match_order(self) -> None:
        """Find the order by accession on the worklist nodes and select it."""
        accession = self.accession.text().strip()
        if not accession:
            self.status.setText("type the order's accession number first")
            return
        self.status.setText(f"asking the worklist for {accession}…")
        self.match_button.setEnabled(False)
        self.pool.submit(
            find_order,
            worklist_nodes(self.config),
            self.config,
            accession,
            on_result=self._order_found,
            on_error=self._order_failed,
        )

    def _order_found(self, item: Any) -> None:
        self.match_button.setEnabled(True)
        candidate = order_candidate(item)
        if candidate is None:
            return
        candidate.reasons = ["matched to order " + item.accession]
        self.add_candidates([candidate], select_first=True)
        self.status.setText(f"order {item.accession}: {item.requested_procedure_description}")

    def _order_failed(self, exc: BaseException) -> None:
        self.match_button.setEnabled(True)
        self.status.setText(describe_error(exc))

    # ---- the choice ---------------------------------------------------------

    def _chosen(self, *_: Any) -> None:
        manual = self.choice.currentData() == MANUAL
        self.patient_id.setEnabled(manual)
        self.issuer.setEnabled(manual)

    def choose(self, index: int) -> None:
        self.choice.setCurrentIndex(index)

    def target(self) -> Target | None:
        """The local identity chosen for this patient (None: keep the outside one)."""
        data = self.choice.currentData()
        if data == KEEP:
            return None
        if data == MANUAL:
            local = Reconcile(self.patient_id.text().strip(), self.issuer.text().strip())
            return Target(PatientIdentity(local.patient_id, local.issuer))
        candidate: Candidate = data
        return Target(candidate.identity, candidate.source, candidate.order)


class ReconcilePanel(QWidget):
    """The rows of one preview; `targets()` is what the import applies."""

    def __init__(self, pool: WorkerPool, config: Config, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pool = pool
        self.config = config
        self.rows: list[ReconcileRow] = []
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self.hint = QLabel(
            "Each outside patient keeps its identity unless you pick a local patient or an "
            "order. The outside ID goes to Other Patient IDs and every replaced value to "
            "Original Attributes."
        )
        self.hint.setWordWrap(True)
        self._layout.addWidget(self.hint)

    def clear(self) -> None:
        for row in self.rows:
            row.setParent(None)
            row.deleteLater()
        self.rows = []

    def set_patients(
        self, patients: list[OutsidePatient], lookup: Callable[[OutsidePatient], LookupResult]
    ) -> None:
        """One row per patient; each row's candidates are looked up on the pool."""
        self.clear()
        for patient in patients:
            row = ReconcileRow(patient, self.pool, self.config, self)
            self.rows.append(row)
            self._layout.addWidget(row)
            self.pool.submit(lookup, patient, on_result=row.show_lookup, on_error=row.lookup_failed)

    def targets(self) -> dict[tuple[str, str], Target]:
        chosen = {}
        for row in self.rows:
            target = row.target()
            if target is not None:
                chosen[row.patient.identity.key] = target
        return chosen


class CandidatePicker(QDialog):
    """Search the worklist or look up the local patient; `chosen` is the picked candidate."""

    def __init__(
        self,
        pool: WorkerPool,
        config: Config,
        conn_factory: Callable[[], Any],
        current: PatientIdentity,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fill from a worklist order or the local patient")
        self.pool = pool
        self.config = config
        self.conn_factory = conn_factory
        self.current = current
        self.chosen: Candidate | None = None
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.name = QLineEdit(current.name)
        self.patient_id = QLineEdit()
        self.accession = QLineEdit()
        self.date = QLineEdit()
        self.date.setPlaceholderText("YYYYMMDD or YYYYMMDD-YYYYMMDD")
        form.addRow("Patient's name", self.name)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Accession", self.accession)
        form.addRow("Scheduled date", self.date)
        layout.addLayout(form)
        buttons = QHBoxLayout()
        self.worklist_button = QPushButton("Search the worklist")
        self.worklist_button.setEnabled(bool(worklist_nodes(config)))
        self.worklist_button.clicked.connect(self.search_worklist)
        self.lookup_button = QPushButton("Find the local patient")
        self.lookup_button.clicked.connect(self.look_up)
        buttons.addWidget(self.worklist_button)
        buttons.addWidget(self.lookup_button)
        layout.addLayout(buttons)
        self.results = QListWidget()
        self.results.setMinimumWidth(620)
        self.results.currentItemChanged.connect(self._selected)
        layout.addWidget(self.results)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Fill the form")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._selected()

    def _selected(self, *_: Any) -> None:
        item = self.results.currentItem()
        self.chosen = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(self.chosen is not None)

    def _show(self, candidates: list[Candidate], errors: str = "") -> None:
        self.results.clear()
        for candidate in candidates:
            item = QListWidgetItem(candidate.label())
            item.setData(Qt.ItemDataRole.UserRole, candidate)
            self.results.addItem(item)
        text = f"{len(candidates)} found"
        self.status.setText(f"{text} (not reachable: {errors})" if errors else text)
        if candidates:
            self.results.setCurrentRow(0)

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(describe_error(exc))

    def search_worklist(self) -> None:
        try:
            query = WorklistQuery(
                patient_name=self.name.text(),
                patient_id=self.patient_id.text(),
                accession=self.accession.text(),
                scheduled_date=self.date.text(),
            ).validate()
        except GearviewError as exc:
            self.status.setText(exc.one_line())
            return
        nodes, config = worklist_nodes(self.config), self.config

        def search() -> tuple[list[Candidate], str]:
            found: list[Candidate] = []
            errors = []
            for node in nodes:
                try:
                    items = find_worklist(node, config, query)
                except GearviewError as exc:
                    errors.append(f"{node.name}: {exc.one_line()}")
                    continue
                found.extend(c for c in map(order_candidate, items) if c is not None)
            return found, "; ".join(errors)

        self.status.setText("searching the worklist…")
        self.pool.submit(search, on_result=lambda r: self._show(*r), on_error=self._failed)

    def look_up(self) -> None:
        outside = PatientIdentity(
            self.patient_id.text().strip(),
            "",
            self.name.text().strip(),
            self.current.birth_date,
            self.current.sex,
        )
        config = self.config
        query_nodes = [n for n in config.nodes if "query" in n.roles]

        def lookup() -> LookupResult:
            return find_candidates(outside, self.conn_factory(), config, query_nodes)

        self.status.setText("looking up the local patient…")
        self.pool.submit(
            lookup,
            on_result=lambda r: self._show(r.candidates, _errors_text(r)),
            on_error=self._failed,
        )


def form_values(candidate: Candidate) -> dict[str, str]:
    """Edit-form keyword -> value a candidate (or order) fills in."""
    who = candidate.identity
    values = {
        "PatientName": who.name,
        "PatientID": who.patient_id,
        "IssuerOfPatientID": who.issuer,
        "PatientBirthDate": who.birth_date,
        "PatientSex": who.sex,
    }
    if candidate.order is not None:
        values["AccessionNumber"] = candidate.order.accession
        if candidate.order.requested_procedure_description:
            values["StudyDescription"] = candidate.order.requested_procedure_description
    return {k: v for k, v in values.items() if v}
