"""Tag editor: every element of an instance as a tree; edit one value for the
instance, its series or the whole study.

"Show tags…" on a study lists its series and, for the chosen series, its
instances: the editor opens on the first image of the first series that has
images (not on a report or PDF that happens to sort first), and any other
instance is two clicks away. Reading the file and writing the edit run on
workers; private elements show their creator and are read-only; values are
validated per VR inline before anything is written (the same rules as the
Edit study form and the CLI).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydicom.uid import UID
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gearview.edit.study_edit import edit_instances
from gearview.edit.tags import TagNode, element_tree
from gearview.edit.values import resolve_field, validate
from gearview.errors import GearviewError, NotFoundError, describe_error
from gearview.store import Cache
from gearview.store.records import InstanceRecord, SeriesRecord
from gearview.ui.tag_tree import TagTree

if TYPE_CHECKING:
    from gearview.ui.main_window import MainWindow

SCOPES = (("instance", "This instance"), ("series", "This series"), ("study", "Whole study"))
ERROR_STYLE = "color: #d32f2f;"
RunJob = Callable[..., Any]


def load_instance(cache: Cache, sop_uid: str) -> tuple[InstanceRecord, list[TagNode]]:
    """Worker side: the instance's record and element tree."""
    record = cache.instance(sop_uid)
    if record is None:
        raise NotFoundError("the instance is no longer in the cache")
    return record, element_tree(record.path)


def study_contents(
    cache: Cache, study_uid: str
) -> tuple[list[SeriesRecord], dict[str, list[InstanceRecord]]]:
    """Worker side: the study's series and each series' instances (display order)."""
    series = cache.series(study_uid)
    if not series:
        raise NotFoundError("the study is no longer in the cache")
    by_series: dict[str, list[InstanceRecord]] = {s.series_instance_uid: [] for s in series}
    for record in cache.instances(study_uid=study_uid):
        by_series.setdefault(record.series_instance_uid, []).append(record)
    return series, by_series


def first_image_series(
    series: list[SeriesRecord], by_series: dict[str, list[InstanceRecord]]
) -> SeriesRecord:
    """The first series holding an image (rows set), else the first series."""
    return next(
        (s for s in series if any(i.rows for i in by_series.get(s.series_instance_uid, []))),
        series[0],
    )


def instance_label(record: InstanceRecord) -> str:
    kind = UID(record.sop_class_uid).name if record.sop_class_uid else "instance"
    frames = (
        f", {record.number_of_frames} frames" if (record.number_of_frames or 1) > 1 else ""
    )
    number = record.instance_number if record.instance_number is not None else "-"
    return f"#{number}  {kind}{frames}"


def series_label(record: SeriesRecord) -> str:
    number = record.series_number if record.series_number is not None else "-"
    count = record.number_of_series_related_instances
    return (
        f"{number}  {record.modality} {record.series_description}".rstrip()
        + f"  ({count} instance{'s' if count != 1 else ''})"
    )


def scope_records(cache: Cache, record: InstanceRecord, scope: str) -> list[InstanceRecord]:
    if scope == "study":
        return cache.instances(study_uid=record.study_instance_uid)
    if scope == "series":
        return cache.instances(
            study_uid=record.study_instance_uid, series_uid=record.series_instance_uid
        )
    return [record]


class TagEditor(QWidget):
    """The element tree of one instance with a search box and a one-value editor."""

    def __init__(
        self, cache: Cache, pool: Any, run_job: RunJob, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.cache = cache
        self.pool = pool
        self.run_job = run_job
        self.record: InstanceRecord | None = None
        self.loading = False
        self._instances: dict[str, list[InstanceRecord]] = {}
        self._wanted = ""
        layout = QVBoxLayout(self)
        pick = QHBoxLayout()
        self.series_combo = QComboBox()
        self.series_combo.setToolTip("The series whose instances are listed beside")
        self.series_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.series_combo.setMinimumContentsLength(18)
        self.instance_combo = QComboBox()
        self.instance_combo.setToolTip("The instance shown below")
        self.instance_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.instance_combo.setMinimumContentsLength(18)
        pick.addWidget(QLabel("Series"))
        pick.addWidget(self.series_combo, 1)
        pick.addWidget(QLabel("Instance"))
        pick.addWidget(self.instance_combo, 1)
        layout.addLayout(pick)
        self.series_combo.currentIndexChanged.connect(self._series_chosen)
        self.instance_combo.currentIndexChanged.connect(self._instance_chosen)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search keyword or tag (e.g. PatientName, 0010,0020)")
        self.search.textChanged.connect(self.apply_filter)
        layout.addWidget(self.search)
        self.tree = TagTree(grey_read_only=True)
        self.tree.currentItemChanged.connect(self._selected)
        layout.addWidget(self.tree, 1)
        self.field = QLabel("Select an element to edit it")
        layout.addWidget(self.field)
        row = QHBoxLayout()
        self.value = QLineEdit()
        self.value.setEnabled(False)
        self.value.textChanged.connect(self._validate)
        self.scope = QComboBox()
        for key, label in SCOPES:
            self.scope.addItem(label, key)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setEnabled(False)
        self.apply_button.clicked.connect(self.apply)
        row.addWidget(self.value, 1)
        row.addWidget(self.scope)
        row.addWidget(self.apply_button)
        layout.addLayout(row)
        self.error = QLabel()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setVisible(False)
        layout.addWidget(self.error)
        self.status = QLabel()
        layout.addWidget(self.status)

    # ---- loading -----------------------------------------------------------------

    def show_study(self, study_uid: str) -> None:
        """List the study's series and instances, then show its first image."""
        self.loading = True
        self.status.setText("Reading…")
        self.pool.submit(
            study_contents, self.cache, study_uid, on_result=self._listed, on_error=self._failed
        )

    def _listed(
        self, result: tuple[list[SeriesRecord], dict[str, list[InstanceRecord]]]
    ) -> None:
        series, self._instances = result
        chosen = first_image_series(series, self._instances)
        self.series_combo.blockSignals(True)
        self.series_combo.clear()
        for record in series:
            self.series_combo.addItem(series_label(record), record.series_instance_uid)
        self.series_combo.setCurrentIndex(self.series_combo.findData(chosen.series_instance_uid))
        self.series_combo.blockSignals(False)
        self._series_chosen()

    def _series_chosen(self, *_: Any) -> None:
        records = self._instances.get(self.series_combo.currentData(), [])
        self.instance_combo.blockSignals(True)
        self.instance_combo.clear()
        for record in records:
            self.instance_combo.addItem(instance_label(record), record.sop_instance_uid)
        self.instance_combo.blockSignals(False)
        if records:
            self.instance_combo.setCurrentIndex(0)
            self._instance_chosen()

    def _instance_chosen(self, *_: Any) -> None:
        sop_uid = self.instance_combo.currentData()
        if sop_uid:
            self.load(sop_uid)

    def load(self, sop_uid: str) -> None:
        self.loading = True
        self._wanted = sop_uid
        self.status.setText("Reading…")
        self.pool.submit(
            load_instance, self.cache, sop_uid, on_result=self._loaded, on_error=self._failed
        )

    def _loaded(self, result: tuple[InstanceRecord, list[TagNode]]) -> None:
        record, nodes = result
        if record.sop_instance_uid != self._wanted:  # another instance was picked meanwhile
            return
        self.record = record
        self.tree.show_nodes(nodes)
        self.status.setText(f"{sum(1 for _ in self._items())} elements")
        self.loading = False
        self.apply_filter(self.search.text())

    def _failed(self, exc: BaseException) -> None:
        self.loading = False
        self.status.setText(f"Nothing was changed: {describe_error(exc)}")

    def _items(self) -> list[QTreeWidgetItem]:
        return self.tree.items()

    def node(self, item: QTreeWidgetItem) -> TagNode:
        return self.tree.node(item)

    def find_item(self, keyword: str) -> QTreeWidgetItem | None:
        return self.tree.find_item(keyword)

    # ---- search --------------------------------------------------------------------

    def apply_filter(self, text: str) -> None:
        """Show elements matching `text` (and the sequences that contain them)."""

        def visit(item: QTreeWidgetItem) -> bool:
            child_match = False
            for index in range(item.childCount()):
                child_match = visit(item.child(index)) or child_match
            match = self.node(item).matches(text) or child_match
            item.setHidden(not match)
            if child_match and text:
                item.setExpanded(True)
            return match

        for index in range(self.tree.topLevelItemCount()):
            visit(self.tree.topLevelItem(index))

    def visible_keywords(self) -> list[str]:
        return [self.node(i).keyword for i in self._items() if not i.isHidden()]

    # ---- editing -------------------------------------------------------------------

    def _selected(self, item: QTreeWidgetItem | None, _: Any = None) -> None:
        node = self.node(item) if item is not None else None
        editable = bool(node and node.editable)
        self.value.setEnabled(editable)
        if node is None:
            return
        if editable:
            self.field.setText(f"{node.name} {node.tag} ({node.vr})")
            self.value.setText(node.full)
        else:
            reason = (
                f"private, creator {node.private_creator}"
                if node.private_creator
                else "not editable here (UIDs, sequences, binary and file meta are not)"
            )
            self.field.setText(f"{node.name} {node.tag}: {reason}")
        self._validate()

    def _validate(self) -> bool:
        item = self.tree.currentItem()
        node = self.node(item) if item is not None else None
        if node is None or not node.editable:
            self.apply_button.setEnabled(False)
            self.error.setVisible(False)
            return False
        try:
            validate(resolve_field(node.keyword), self.value.text())
        except GearviewError as exc:
            self.error.setText(exc.message)
            self.error.setVisible(True)
            self.apply_button.setEnabled(False)
            return False
        self.error.setVisible(False)
        self.apply_button.setEnabled(self.value.text() != node.full)
        return True

    def apply(self) -> None:
        item = self.tree.currentItem()
        if item is None or self.record is None or not self._validate():
            return
        node = self.node(item)
        record, scope, value = self.record, self.scope.currentData(), self.value.text()

        def job(progress: Any, token: Any) -> Any:
            records = scope_records(self.cache, record, scope)
            return edit_instances(
                self.cache,
                records,
                {node.keyword: value},
                scope=scope,
                reason="tag editor",
                progress=progress,
                token=token,
            )

        self.status.setText("Applying…")
        self.run_job(
            job,
            f"Set {node.keyword}",
            on_done=lambda _: self.load(record.sop_instance_uid),
            on_error=self._failed,
        )


def install(window: MainWindow) -> None:
    """A "Tags" dock, filled by "Show tags…" on a study (its first image; series and instance
    pickers above the tree)."""
    editor = TagEditor(window.cache, window.pool, window.run_job, window)
    dock = window.add_dock(editor, "Tags")
    dock.hide()
    window.tag_editor = editor

    def show_tags(uids: list[str]) -> None:
        if not uids:
            return
        dock.show()
        dock.raise_()
        editor.show_study(uids[0])

    window.add_study_action("Show tags…", show_tags)
