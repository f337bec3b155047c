"""The Query/Retrieve page: search one or more PACS for studies and pull them in.

The fields are those of SPEC §2.5 (patient name with wildcards, patient ID,
accession, study date with presets, modality, birth date); Enter in any
field searches. The query runs on a worker against every checked node in
parallel; merged rows show their sources, studies already in the local cache
are marked, and nodes that failed are listed beside the results. Retrieve
queues one job per selected study in the persistent queue (Activity panel).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gearview.config import Config, Node
from gearview.display import format_date, format_person_name
from gearview.errors import GearviewError, describe_error
from gearview.events import CacheChanged
from gearview.jobqueue import RETRIEVE
from gearview.net.client import MultiFindResult, find_on_nodes
from gearview.net.query import FoundStudy, StudyQuery, date_preset
from gearview.net.tasks import retrieve_params

log = logging.getLogger(__name__)

DATE_PRESETS = (
    ("Any date", ""),
    ("Today", "today"),
    ("Yesterday", "yesterday"),
    ("Last 7 days", "last7"),
    ("Custom range", "custom"),
)
MODALITIES = ("", "CT", "MR", "CR", "DX", "MG", "US", "XA", "RF", "NM", "PT", "SC", "OT", "SR")
COLUMNS = (
    "Local",
    "Patient",
    "Patient ID",
    "Birth date",
    "Study date",
    "Modalities",
    "Accession",
    "Description",
    "Instances",
    "Sources",
)
QUERY_ROLES = ("query", "retrieve", "get")
IN_CACHE = "\N{CHECK MARK}"
NO_NODE = "No query node configured: add one in Settings."
#: Result columns shown formatted; the raw DICOM value is the cell's tooltip.
FORMATTED = {1: format_person_name, 3: format_date, 4: format_date}


def local_mark(local: int, remote: int) -> tuple[str, str]:
    """The Local column's text and tooltip: a tick only when every instance is here."""
    if not local:
        return "", ""
    if not remote:
        return (
            f"{local}",
            f"{local} instance(s) in the local cache; the node did not say how many it holds",
        )
    if local >= remote:
        return IN_CACHE, f"all {remote} instance(s) are in the local cache"
    return (
        f"{local}/{remote}",
        f"only {local} of {remote} instances are in the local cache: Retrieve fetches the rest",
    )


def query_nodes(config: Config) -> list[Node]:
    """Nodes that can be queried (any Q/R role)."""
    return [n for n in config.nodes if any(r in n.roles for r in QUERY_ROLES)]


class QueryPanel(QWidget):
    """Query fields, node multi-select, results table, Retrieve."""

    search_finished = Signal(object)

    def __init__(self, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.config: Config = window.config
        self.results: list[FoundStudy] = []
        self.searching = False
        self._build()
        self.reload_nodes()
        window.bridge.cache_changed.connect(self._on_cache_changed)
        if hasattr(window, "config_applied"):
            window.config_applied.connect(self._config_applied)

    # ---- layout -----------------------------------------------------------

    def _build(self) -> None:
        self.patient_name = QLineEdit(self)
        self.patient_name.setPlaceholderText("e.g. DOE^J*  (wildcards * and ?)")
        self.patient_id = QLineEdit(self)
        self.accession = QLineEdit(self)
        self.birth_date = QLineEdit(self)
        self.birth_date.setPlaceholderText("YYYYMMDD")
        self.modality = QComboBox(self)
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.date_preset = QComboBox(self)
        for label, key in DATE_PRESETS:
            self.date_preset.addItem(label, key)
        today = QDate.currentDate()
        self.date_from = QDateEdit(today.addDays(-7), self)
        self.date_to = QDateEdit(today, self)
        for edit in (self.date_from, self.date_to):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setMinimumDate(QDate(1900, 1, 1))
            edit.setSpecialValueText("any")  # shown at the minimum date: "Any date"
        self.date_preset.currentIndexChanged.connect(self._preset_changed)
        dates = QHBoxLayout()
        dates.addWidget(self.date_preset)
        dates.addWidget(self.date_from)
        dates.addWidget(QLabel("to", self))
        dates.addWidget(self.date_to)
        dates.addStretch(1)
        form = QFormLayout()
        form.addRow("Patient name", self.patient_name)
        form.addRow("Patient ID", self.patient_id)
        form.addRow("Accession", self.accession)
        form.addRow("Study date", dates)
        form.addRow("Modality", self.modality)
        form.addRow("Birth date", self.birth_date)
        self.nodes = QListWidget(self)
        self.nodes.setMaximumHeight(110)
        self.search_button = QPushButton("Search", self)
        self.search_button.setDefault(True)
        self.retrieve_button = QPushButton("Retrieve", self)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        top = QHBoxLayout()
        top.addLayout(form, 3)
        side = QVBoxLayout()
        side.addWidget(QLabel("Nodes", self))
        side.addWidget(self.nodes)
        side.addWidget(self.search_button)
        top.addLayout(side, 1)
        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(7, QHeaderView.ResizeMode.Stretch)
        actions = QHBoxLayout()
        actions.addWidget(self.retrieve_button)
        actions.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(actions)
        for edit in (self.patient_name, self.patient_id, self.accession, self.birth_date):
            edit.returnPressed.connect(self.search)
        line = self.modality.lineEdit()
        if line is not None:
            line.returnPressed.connect(self.search)
        self.search_button.clicked.connect(self.search)
        self.retrieve_button.clicked.connect(self.retrieve_selected)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self._preset_changed()
        self._update_buttons()

    def reload_nodes(self) -> None:
        """Fill the node list from the configuration (all checked by default)."""
        checked = {
            self.nodes.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.nodes.count())
            if self.nodes.item(i).checkState() == Qt.CheckState.Checked
        }
        self.nodes.clear()
        for node in query_nodes(self.config):
            item = QListWidgetItem(f"{node.name}  ({node.address})", self.nodes)
            item.setData(Qt.ItemDataRole.UserRole, node.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            state = node.name in checked or not checked
            item.setCheckState(Qt.CheckState.Checked if state else Qt.CheckState.Unchecked)
        if not self.nodes.count():
            self.status.setText(NO_NODE)
        elif self.status.text() == NO_NODE:
            self.status.clear()

    def _config_applied(self, config: Config) -> None:
        self.config = config
        self.reload_nodes()

    def _preset_changed(self) -> None:
        """Grey the date fields unless the range is custom; they show the preset's range."""
        key = self.date_preset.currentData()
        custom = key == "custom"
        self.date_from.setEnabled(custom)
        self.date_to.setEnabled(custom)
        if custom:
            for edit in (self.date_from, self.date_to):
                if edit.date() == edit.minimumDate():
                    edit.setDate(QDate.currentDate())
            return
        if not key:
            start = end = self.date_from.minimumDate()
        else:
            first, _, last = date_preset(key, dt.date.today()).partition("-")
            start = QDate.fromString(first, "yyyyMMdd")
            end = QDate.fromString(last or first, "yyyyMMdd")
        self.date_from.setDate(start)
        self.date_to.setDate(end)

    def _update_buttons(self) -> None:
        self.retrieve_button.setEnabled(bool(self.selected_rows()) and not self.searching)
        self.search_button.setEnabled(not self.searching)

    # ---- query --------------------------------------------------------------

    def checked_nodes(self) -> list[Node]:
        names = [
            self.nodes.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.nodes.count())
            if self.nodes.item(i).checkState() == Qt.CheckState.Checked
        ]
        return [n for n in (self.config.node(name) for name in names) if n is not None]

    def study_date(self) -> str:
        key = self.date_preset.currentData()
        if not key:
            return ""
        if key == "custom":
            start = self.date_from.date().toString("yyyyMMdd")
            end = self.date_to.date().toString("yyyyMMdd")
            return start if start == end else f"{start}-{end}"
        return date_preset(key, dt.date.today())

    def build_query(self) -> StudyQuery:
        return StudyQuery(
            patient_name=self.patient_name.text(),
            patient_id=self.patient_id.text(),
            accession_number=self.accession.text(),
            study_date=self.study_date(),
            modalities_in_study=self.modality.currentText(),
            patient_birth_date=self.birth_date.text(),
        ).validate()

    def search(self) -> None:
        """Run the query on every checked node on a worker thread."""
        if self.searching:
            return
        try:
            query = self.build_query()
        except GearviewError as exc:
            self.status.setText(exc.one_line())
            return
        nodes = self.checked_nodes()
        if not nodes:
            self.status.setText("Check at least one node to query.")
            return
        self.searching = True
        self._update_buttons()
        self.status.setText(f"Searching {', '.join(n.name for n in nodes)}…")
        config = self.config
        self.window.pool.submit(
            find_on_nodes, nodes, config, query, on_result=self._found, on_error=self._failed
        )

    def _found(self, result: MultiFindResult) -> None:
        self.searching = False
        self.results = list(result.studies)
        self._fill()
        text = f"{len(self.results)} stud{'y' if len(self.results) == 1 else 'ies'} found"
        if result.errors:
            text += " - " + "; ".join(f"{name}: {err}" for name, err in result.errors.items())
        self.status.setText(text)
        self._update_buttons()
        self.search_finished.emit(result)

    def _failed(self, exc: BaseException) -> None:
        self.searching = False
        self.status.setText(f"Query failed: {describe_error(exc)}")
        self._update_buttons()
        self.search_finished.emit(exc)

    def _fill(self) -> None:
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.results))
        for row, study in enumerate(self.results):
            values = (
                "",
                study.patient_name,
                study.patient_id,
                study.patient_birth_date,
                study.study_date,
                ",".join(study.modalities_in_study),
                study.accession_number,
                study.study_description,
                str(study.number_of_study_related_instances),
                ",".join(study.sources),
            )
            for column, value in enumerate(values):
                formatter = FORMATTED.get(column)
                item = QTableWidgetItem(formatter(value) if formatter else value)
                if formatter is not None and value:
                    item.setToolTip(value)
                item.setData(Qt.ItemDataRole.UserRole, study.study_instance_uid)
                self.table.setItem(row, column, item)
        self._mark_cached()

    def _on_cache_changed(self, _event: CacheChanged) -> None:
        self._mark_cached()

    def _mark_cached(self) -> None:
        """Tick the studies the local cache already holds (one indexed lookup)."""
        if not self.results:
            return
        self.window.pool.submit(
            self._cached_uids,
            [s.study_instance_uid for s in self.results],
            on_result=self._apply_marks,
        )

    def _cached_uids(self, uids: list[str]) -> dict[str, int]:
        """Worker: Study Instance UID -> instances the local cache holds of it."""
        return {
            s.study_instance_uid: s.number_of_study_related_instances
            for s in self.window.cache.studies_by_uid(uids)
        }

    def _apply_marks(self, cached: dict[str, int]) -> None:
        remote = {s.study_instance_uid: s.number_of_study_related_instances for s in self.results}
        for row in range(self.table.rowCount()):
            item = self.table.item(row, 0)
            if item is None:
                continue
            uid = item.data(Qt.ItemDataRole.UserRole)
            text, tip = local_mark(cached.get(uid, 0), remote.get(uid, 0))
            item.setText(text)
            item.setToolTip(tip)

    def cached_rows(self) -> list[int]:
        """Rows whose study is completely in the local cache."""
        return [
            r
            for r in range(self.table.rowCount())
            if (item := self.table.item(r, 0)) is not None and item.text() == IN_CACHE
        ]

    # ---- retrieve -------------------------------------------------------------

    def selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.table.selectionModel().selectedRows()})

    def _source_node(self, study: FoundStudy) -> str | None:
        """The first source that may be retrieved from (C-MOVE or C-GET)."""
        for name in study.sources:
            node = self.config.node(name)
            if node is not None and ("retrieve" in node.roles or "get" in node.roles):
                return node.name
        return study.sources[0] if study.sources else None

    def retrieve_selected(self) -> list[str]:
        """Queue one retrieve job per selected study; returns the job ids."""
        queue = self.window.station.jobs
        job_ids = []
        for row in self.selected_rows():
            uid = self.table.item(row, 1).data(Qt.ItemDataRole.UserRole)
            study = next(s for s in self.results if s.study_instance_uid == uid)
            node = self._source_node(study)
            if node is None:
                continue
            who = format_person_name(study.patient_name) or study.patient_id or uid
            title = f"Retrieve {who} from {node}"
            job_ids.append(queue.submit(RETRIEVE, title, retrieve_params(node, uid)).id)
        if job_ids:
            self.status.setText(f"{len(job_ids)} retrieve job(s) queued - see Activity")
        return job_ids


def install(window: Any) -> None:
    """The Query/Retrieve tab."""
    panel = QueryPanel(window)
    window.query_panel = panel
    window.add_tab(panel, "Query/Retrieve")
