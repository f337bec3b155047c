"""The local study list grouped as patient ▸ study ▸ series.

`PatientTreeModel` groups the rows the study list's filter lets through
(the same `StudyFilterProxy`), so the free text, modality and date filters
apply to the tree too. It regroups, coalesced to one pass per event-loop
turn, when those rows change — and only while the tree is shown. A study's
series are read on the list's worker pool the first time the study is
expanded (and again after the study changed). The view keeps expanded
patients and studies, and the selection, across regrouping.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import qtawesome as qta
from PySide6.QtCore import (
    QAbstractItemModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTreeView, QWidget

from gearview.display import format_date, format_person_name
from gearview.store.records import SeriesRecord, StudyRecord
from gearview.ui.study_list import (
    COL_STUDY_DATE,
    COLUMNS,
    SORT_ROLE,
    UID_ROLE,
    StudyFilterProxy,
    StudyTableModel,
)

#: internalId of patient rows; study rows carry their patient's number + 1; series rows
#: SERIES_BASE + the study's number in `_studies`.
SERIES_BASE = 1 << 40
#: Role giving a row's kind: "patient", "study" or "series".
KIND_ROLE = Qt.ItemDataRole.UserRole + 3
#: Columns of the patient shown on its row only.
PATIENT_ATTRS = ("patient_id", "birth_date", "sex")
#: Width of the first column (patient / study / series), in average character widths.
TREE_COLUMN_CHARS = 34
LoadSeries = Callable[[str, Callable[[list[SeriesRecord]], None]], None]


@dataclass
class _Patient:
    key: tuple[str, ...]
    first: StudyRecord
    studies: list[int] = field(default_factory=list)  # numbers in PatientTreeModel._studies


def patient_key(record: StudyRecord) -> tuple[str, ...]:
    """Studies of one patient: same ID and issuer; without an ID, same name and birth date."""
    if record.patient_id:
        return ("id", record.patient_id, record.issuer_of_patient_id)
    return ("name", record.patient_name, record.birth_date)


class PatientTreeModel(QAbstractItemModel):
    """Patients, their studies, and (loaded on expansion) the studies' series."""

    def __init__(self, source: StudyFilterProxy, load_series: LoadSeries,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._source = source
        self._load_series = load_series
        self._patients: list[_Patient] = []
        self._studies: list[tuple[int, int, StudyRecord]] = []  # (patient, row in it, record)
        #: study uid -> (its instance count when read, its series)
        self._series: dict[str, tuple[int, list[SeriesRecord]]] = {}
        self._loading: set[str] = set()
        self._following = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.regroup)
        self._icons = {
            "patient": qta.icon("mdi6.account"),
            "study": qta.icon("mdi6.folder-outline"),
            "series": qta.icon("mdi6.image-multiple-outline"),
        }

    # ---- following the filtered study rows --------------------------------------

    def follow(self, on: bool) -> None:
        """Regroup from the study rows while shown; stop listening while hidden."""
        signals = (self._source.modelReset, self._source.rowsInserted, self._source.rowsRemoved,
                   self._source.dataChanged, self._source.layoutChanged)
        if on and not self._following:
            for signal in signals:
                signal.connect(self._schedule)
            self._following = True
            self.regroup()
        elif not on and self._following:
            for signal in signals:
                signal.disconnect(self._schedule)
            self._following = False
            self._timer.stop()

    def _schedule(self, *_: object) -> None:
        self._timer.start()

    def regroup(self) -> None:
        source = self._source.sourceModel()
        if not isinstance(source, StudyTableModel):
            return
        records = [
            source.record(self._source.mapToSource(self._source.index(row, 0)).row())
            for row in range(self._source.rowCount())
        ]
        self.beginResetModel()
        self._patients, self._studies = [], []
        by_key: dict[tuple[str, ...], int] = {}
        for record in records:
            key = patient_key(record)
            number = by_key.get(key)
            if number is None:
                number = by_key[key] = len(self._patients)
                self._patients.append(_Patient(key, record))
            patient = self._patients[number]
            self._studies.append((number, len(patient.studies), record))
            patient.studies.append(len(self._studies) - 1)
        current = {r.study_uid: r.instances for _, _, r in self._studies}
        self._series = {u: v for u, v in self._series.items() if current.get(u) == v[0]}
        self.endResetModel()

    # ---- structure ------------------------------------------------------------------

    def index(self, row: int, column: int,
              parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if not self.hasIndex(row, column, parent):
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, 0)
        kind, number = self._node(parent)
        if kind == "patient":
            return self.createIndex(row, column, number + 1)
        if kind == "study":
            return self.createIndex(row, column, SERIES_BASE + number)
        return QModelIndex()

    def parent(self, index: QModelIndex | QPersistentModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        if not index.isValid():
            return QModelIndex()
        ident = index.internalId()
        if ident == 0:
            return QModelIndex()
        if ident < SERIES_BASE:
            return self.createIndex(ident - 1, 0, 0)
        patient, row, _ = self._studies[ident - SERIES_BASE]
        return self.createIndex(row, 0, patient + 1)

    def _node(self, index: QModelIndex | QPersistentModelIndex) -> tuple[str, int]:
        """("patient", patient number) / ("study", study number) / ("series", study number)."""
        ident = index.internalId()
        if ident == 0:
            return "patient", index.row()
        if ident < SERIES_BASE:
            return "study", self._patients[ident - 1].studies[index.row()]
        return "series", ident - SERIES_BASE

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008,N802
        if not parent.isValid():
            return len(self._patients)
        if parent.column() != 0:
            return 0
        kind, number = self._node(parent)
        if kind == "patient":
            return len(self._patients[number].studies)
        if kind == "study":
            loaded = self._series.get(self._studies[number][2].study_uid)
            return len(loaded[1]) if loaded else 0
        return 0

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008,N802
        return len(COLUMNS)

    def hasChildren(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> bool:  # noqa: B008,N802
        if not parent.isValid():
            return bool(self._patients)
        if parent.column() != 0:
            return False
        kind, number = self._node(parent)
        if kind == "study":
            return self._studies[number][2].series > 0
        return kind == "patient"

    def canFetchMore(self, parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        if not parent.isValid() or self._node(parent)[0] != "study":
            return False
        uid = self._studies[self._node(parent)[1]][2].study_uid
        return uid not in self._series and uid not in self._loading

    def fetchMore(self, parent: QModelIndex | QPersistentModelIndex) -> None:  # noqa: N802
        """Read the study's series on a worker; they are inserted when they arrive."""
        record = self._studies[self._node(parent)[1]][2]
        self._loading.add(record.study_uid)
        self._load_series(
            record.study_uid, lambda series: self._series_loaded(record, series)
        )

    def _series_loaded(self, record: StudyRecord, series: list[SeriesRecord]) -> None:
        self._loading.discard(record.study_uid)
        number = next(
            (n for n, (_, _, r) in enumerate(self._studies) if r.study_uid == record.study_uid),
            None,
        )
        if number is None or not series:
            return
        patient, row, current = self._studies[number]
        parent = self.createIndex(row, 0, patient + 1)
        self.beginInsertRows(parent, 0, len(series) - 1)
        self._series[record.study_uid] = (current.instances, series)
        self.endInsertRows()

    # ---- data ----------------------------------------------------------------------------

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return "Patient / study / series" if section == 0 else COLUMNS[section].title
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        kind, number = self._node(index)
        if role == KIND_ROLE:
            return kind
        if kind == "patient":
            if role == Qt.ItemDataRole.DecorationRole:
                return self._icons[kind] if index.column() == 0 else None
            return self._patient_data(self._patients[number], index.column(), role)
        record = self._studies[number][2]
        if role == UID_ROLE:
            return record.study_uid
        if kind == "study":
            if role == Qt.ItemDataRole.DecorationRole and index.column() == 0:
                return self._study_data(record, 0, role) or self._icons[kind]
            return self._study_data(record, index.column(), role)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icons[kind] if index.column() == 0 else None
        series = self._series[record.study_uid][1][index.row()]
        return self._series_data(series, index.column(), role)

    def _patient_data(self, patient: _Patient, column: int, role: int) -> object:
        first = patient.first
        studies = [self._studies[n][2] for n in patient.studies]
        attr = COLUMNS[column].attr
        values: dict[str, object] = {
            "patient_name": format_person_name(first.patient_name),
            "patient_id": first.patient_id,
            "birth_date": format_date(first.birth_date),
            "sex": first.sex,
            "study_date": format_date(max(s.study_date for s in studies)),
            "modalities": ", ".join(sorted({m for s in studies for m in s.modalities})),
            "description": f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}",
            "series": sum(s.series for s in studies),
            "instances": sum(s.instances for s in studies),
        }
        if role == Qt.ItemDataRole.DisplayRole:
            value = values.get(attr, "")
            return str(value)
        if role == SORT_ROLE:
            if attr in ("series", "instances"):
                return values[attr]
            if attr == "study_date":
                return max(s.study_date for s in studies)
            return str(values.get(attr, "")).casefold()
        if role == Qt.ItemDataRole.ToolTipRole and column == 0:
            return first.patient_name or None
        if role == Qt.ItemDataRole.TextAlignmentRole and COLUMNS[column].numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _study_data(self, record: StudyRecord, column: int, role: int) -> object:
        source = self._source.sourceModel()
        if not isinstance(source, StudyTableModel):
            return None
        row = source.row_of(record.study_uid)
        if row is None:
            return None
        if column == 0 and role == Qt.ItemDataRole.DisplayRole:
            when = format_date(record.study_date) or "(no date)"
            return f"{when}  {record.description or ', '.join(record.modalities)}".rstrip()
        if column == 0 and role == SORT_ROLE:
            return record.study_date
        if COLUMNS[column].attr in PATIENT_ATTRS:  # said once, on the patient's row
            return None
        return source.index(row, column).data(role)

    @staticmethod
    def _series_data(series: SeriesRecord, column: int, role: int) -> object:
        attr = COLUMNS[column].attr
        if attr == "patient_name":
            number = series.number if series.number is not None else "-"
            text = f"#{number}  {series.modality} {series.description}".rstrip()
            sort: object = series.number if series.number is not None else 1 << 30
        elif attr == "modalities":
            text = sort = series.modality
        elif attr == "description":
            text = sort = series.description
        elif attr == "instances":
            text, sort = str(series.instances), series.instances
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        else:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return text
        if role == SORT_ROLE:
            return sort
        return None


class PatientTreeView(QTreeView):
    """The grouped list; Enter or double-click on a study or series opens the study."""

    activated_study = Signal(str)

    def __init__(self, model: PatientTreeModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree_model = model
        self.sorter = QSortFilterProxyModel(self)
        self.sorter.setSourceModel(model)
        self.sorter.setSortRole(SORT_ROLE)
        self.setModel(self.sorter)
        self.setSortingEnabled(True)
        self.sortByColumn(COL_STUDY_DATE, Qt.SortOrder.DescendingOrder)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setUniformRowHeights(True)
        self.setAlternatingRowColors(True)
        header = self.header()
        header.setStretchLastSection(False)
        char = self.fontMetrics().averageCharWidth()
        for section, column in enumerate(COLUMNS):
            chars = TREE_COLUMN_CHARS if section == 0 else column.chars
            if chars:
                header.setSectionResizeMode(section, QHeaderView.ResizeMode.Interactive)
                header.resizeSection(section, chars * char + 16)
            else:
                header.setSectionResizeMode(section, QHeaderView.ResizeMode.Stretch)
        self.doubleClicked.connect(self._activate_index)
        self._expanded: set[tuple[str, ...]] = set()
        self._selected: list[str] = []
        self.expanded.connect(lambda index: self._expanded.add(self._key(index)))
        self.collapsed.connect(lambda index: self._expanded.discard(self._key(index)))
        model.modelAboutToBeReset.connect(self._remember)
        model.modelReset.connect(self._restore)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self._activate_index(self.currentIndex())
            return
        super().keyPressEvent(event)

    def _activate_index(self, index: QModelIndex) -> None:
        if index.data(KIND_ROLE) == "patient":
            return
        uid = index.siblingAtColumn(0).data(UID_ROLE)
        if uid:
            self.activated_study.emit(uid)

    def selected_study_uids(self) -> list[str]:
        """Studies of the selected rows: a patient stands for all its studies."""
        chosen: list[str] = []
        selection = self.selectionModel()
        rows = selection.selectedRows() if selection is not None else []
        for index in rows:
            if index.data(KIND_ROLE) == "patient":
                uids = [index.model().index(r, 0, index).data(UID_ROLE)
                        for r in range(index.model().rowCount(index))]
            else:
                uids = [index.data(UID_ROLE)]
            chosen += [u for u in uids if u and u not in chosen]
        return chosen

    def _key(self, index: QModelIndex) -> tuple[str, ...]:
        kind = index.data(KIND_ROLE)
        if kind == "patient":
            source = self.sorter.mapToSource(index)
            return self.tree_model._patients[source.row()].key  # noqa: SLF001 - our own model
        return ("study", index.data(UID_ROLE) or "")

    def _remember(self) -> None:
        """Before regrouping: the selection (expansion is followed as it happens, so a patient
        a filter hides for a while comes back as it was)."""
        self._selected = self.selected_study_uids()

    def _restore(self) -> None:
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for index in self._walk_all():
            if self._key(index) in self._expanded:
                self.expand(index)
            if index.data(KIND_ROLE) == "study" and index.data(UID_ROLE) in self._selected:
                self.selectionModel().select(index, flags)

    def _walk_all(self) -> list[QModelIndex]:
        found = []
        for row in range(self.sorter.rowCount()):
            patient = self.sorter.index(row, 0)
            found.append(patient)
            rows = range(self.sorter.rowCount(patient))
            found += [self.sorter.index(r, 0, patient) for r in rows]
        return found

    def select_study(self, study_uid: str) -> bool:
        for index in self._walk_all():
            if index.data(KIND_ROLE) == "study" and index.data(UID_ROLE) == study_uid:
                self.expand(index.parent())
                self.setCurrentIndex(index)
                return True
        return False
