"""Import dialog: pick a disc / folder / ISO / zip, preview it, tick what to import,
reconcile each outside patient to a local one or an order (IHE IRWF), import with
progress, read the report, and decide per conflict whether to replace a cached instance.

All disk work (listing drives, scanning, importing, removing the preview's
extracted copies) runs on the dialog's worker pool; the GUI thread only
builds widgets from the results.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from gearview.config import Config
from gearview.display import format_date, format_person_name
from gearview.errors import Cancelled, GearviewError, describe_error
from gearview.jobs import CancelToken, Progress
from gearview.media.drives import list_candidates
from gearview.media.importer import ReconcilePlan, import_preview, plan_targets, preview
from gearview.media.reconcile import outside_patients, propose
from gearview.media.report import ImportReport
from gearview.media.scan import Preview
from gearview.store import Cache
from gearview.ui.reconcile_panel import ReconcilePanel
from gearview.ui.workers import WorkerPool

log = logging.getLogger(__name__)
SERIES_ROLE = Qt.ItemDataRole.UserRole + 1
SOP_ROLE = Qt.ItemDataRole.UserRole + 2
MAX_SKIPPED_SHOWN = 2000


class ImportDialog(QDialog):
    """Preview a medium and import the ticked series."""

    def __init__(
        self,
        cache: Cache,
        report_dir: Any = None,
        parent: QWidget | None = None,
        config: Config | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import from CD / DVD / USB / ISO / zip")
        self.resize(900, 760)
        self.cache = cache
        self.config = config or cache.config
        self.report_dir = report_dir if report_dir is not None else cache.home.logs_dir / "imports"
        self.pool = WorkerPool(self)
        self.preview: Preview | None = None
        self.report: ImportReport | None = None
        self._plan: ReconcilePlan | None = None
        self._token: CancelToken | None = None
        self._build()
        self.pool.submit(list_candidates, on_result=self._fill_drives, on_error=lambda e: None)

    # ---- widgets ------------------------------------------------------------

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        source = QHBoxLayout()
        self.drives = QComboBox()
        self.drives.setPlaceholderText("Mounted discs and USB sticks")
        self.drives.activated.connect(
            lambda _i: self.path_edit.setText(self.drives.currentData() or "")
        )
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("Folder, DICOMDIR, .iso or .zip")
        folder = QPushButton("Folder…")
        folder.clicked.connect(self._pick_folder)
        file_button = QPushButton("File…")
        file_button.clicked.connect(self._pick_file)
        self.scan_button = QPushButton("Scan")
        self.scan_button.clicked.connect(self.start_scan)
        for widget in (self.drives, self.path_edit, folder, file_button, self.scan_button):
            source.addWidget(widget)
        layout.addLayout(source)

        self.summary = QLabel("Choose a source and press Scan.")
        layout.addWidget(self.summary)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Patient / study / series", "Date", "Instances", "Details"])
        self.tree.setColumnWidth(0, 320)
        layout.addWidget(self.tree, 1)

        box = QGroupBox("Reconcile to local patients and orders (IHE IRWF)")
        box_layout = QVBoxLayout(box)
        self.reconcile_panel = ReconcilePanel(self.pool, self.config)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.reconcile_panel)
        scroll.setMinimumHeight(150)
        box_layout.addWidget(scroll)
        layout.addWidget(box)

        bottom = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.import_button = QPushButton("Import selected")
        self.import_button.setEnabled(False)
        self.import_button.clicked.connect(self.start_import)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        for widget in (self.progress, self.cancel_button, self.import_button, close):
            bottom.addWidget(widget)
        layout.addLayout(bottom)
        self.conflicts = QTreeWidget()
        self.conflicts.setHeaderLabels(["Conflict (tick to replace the cached copy)", "Why"])
        self.conflicts.setColumnWidth(0, 260)
        self.conflicts.setVisible(False)
        layout.addWidget(self.conflicts)
        self.replace_button = QPushButton("Replace the ticked cached instances")
        self.replace_button.setVisible(False)
        self.replace_button.clicked.connect(self.replace_checked)
        layout.addWidget(self.replace_button)
        self.report_view = QPlainTextEdit()
        self.report_view.setReadOnly(True)
        self.report_view.setMaximumHeight(160)
        self.report_view.setPlaceholderText("The import report appears here.")
        layout.addWidget(self.report_view)

    def _fill_drives(self, candidates: list[Any]) -> None:
        for cand in candidates:
            self.drives.addItem(f"{cand.label} ({cand.kind})", str(cand.path))

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder or mounted disc")
        if path:
            self.path_edit.setText(path)

    def _pick_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "DICOMDIR, ISO image or zip", "", "Media (DICOMDIR *.iso *.zip);;All files (*)"
        )
        if path:
            self.path_edit.setText(path)

    # ---- jobs ---------------------------------------------------------------

    def _busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.scan_button.setEnabled(not busy)
        self.import_button.setEnabled(not busy and bool(self.preview and self.preview.instances))

    def _on_progress(self, progress: Progress) -> None:
        self.progress.setMaximum(progress.total or 0)
        self.progress.setValue(progress.done if progress.total else 0)
        self.progress.setFormat(f"%v/%m {progress.message}" if progress.total else progress.message)

    def cancel(self) -> None:
        if self._token is not None:
            self._token.cancel()

    def start_scan(self) -> None:
        path = self.path_edit.text().strip()
        if not path:
            self.summary.setText("Choose a folder, disc, DICOMDIR, ISO image or zip first.")
            return
        self._drop_preview()
        self.tree.clear()
        self.report_view.clear()
        self.summary.setText(f"Scanning {path}…")
        self._busy(True)
        self._token = self.pool.submit_job(
            lambda progress, token: preview(path, self.cache, progress, token),
            on_result=self._scanned,
            on_error=self._failed,
            on_progress=self._on_progress,
        )[1]

    def _scanned(self, found: Preview) -> None:
        self.preview = found
        self._busy(False)
        counts = found.counts()
        text = (
            f"{counts['patients']} patient(s), {counts['studies']} study(ies), "
            f"{counts['series']} series, {counts['instances']} DICOM file(s); "
            f"{counts['non_dicom']} non-DICOM, {counts['unreadable']} unreadable, "
            f"{counts['refused']} refused"
        )
        if found.partial:
            text += " — the medium is damaged: the import will be partial"
        self.summary.setText(text)
        self._fill_tree(found)
        home, conn, config = self.cache.home, self.cache, self.config
        self.reconcile_panel.set_patients(
            list(outside_patients(f.info for f in found.instances).values()),
            lambda patient: propose(patient, home, conn.conn, config),
        )

    def _fill_tree(self, found: Preview) -> None:
        self.tree.clear()
        flags = (
            Qt.ItemFlag.ItemIsUserCheckable
            | Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsAutoTristate
        )
        for patient in found.tree():
            p_item = QTreeWidgetItem(
                self.tree,
                [
                    f"{format_person_name(patient.name)} ({patient.patient_id})",
                    format_date(patient.birth_date),
                    "",
                    patient.sex,
                ],
            )
            p_item.setToolTip(0, patient.name)
            p_item.setToolTip(1, patient.birth_date)
            p_item.setFlags(flags)
            p_item.setCheckState(0, Qt.CheckState.Checked)
            for study in patient.studies.values():
                s_item = QTreeWidgetItem(
                    p_item,
                    [
                        study.description or study.study_uid,
                        format_date(study.date),
                        str(study.instance_count),
                        study.accession,
                    ],
                )
                s_item.setFlags(flags)
                s_item.setCheckState(0, Qt.CheckState.Checked)
                for series in study.series.values():
                    label = f"{series.modality} {series.number or ''} {series.description}".strip()
                    orphans = sum(not f.in_dicomdir for f in series.instances)
                    details = (
                        f"{orphans} not in the DICOMDIR" if found.has_dicomdir and orphans else ""
                    )
                    se_item = QTreeWidgetItem(
                        s_item, [label, "", str(len(series.instances)), details]
                    )
                    se_item.setFlags(flags)
                    se_item.setCheckState(0, Qt.CheckState.Checked)
                    se_item.setData(0, SERIES_ROLE, series.series_uid)
            p_item.setExpanded(True)
        if found.skipped:
            other = QTreeWidgetItem(
                self.tree, [f"Not importable ({len(found.skipped)})", "", "", ""]
            )
            for skipped in found.skipped[:MAX_SKIPPED_SHOWN]:
                QTreeWidgetItem(other, [skipped.name, "", "", skipped.reason])

    def selected_series(self) -> set[str]:
        chosen: set[str] = set()
        stack = [self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount())]
        while stack:
            item = stack.pop()
            uid = item.data(0, SERIES_ROLE)
            if uid and item.checkState(0) == Qt.CheckState.Checked:
                chosen.add(uid)
            stack.extend(item.child(i) for i in range(item.childCount()))
        return chosen

    def start_import(self) -> None:
        if self.preview is None:
            return
        try:
            targets = self.reconcile_panel.targets()
        except GearviewError as exc:
            self.summary.setText(exc.one_line())
            return
        chosen = self.selected_series()
        found, cache, config = self.preview, self.cache, self.config

        def job(progress: Any, token: CancelToken) -> tuple[ImportReport, ReconcilePlan | None]:
            plan = plan_targets(found, cache, chosen, targets, token, config)
            report = import_preview(
                found, cache, chosen, plan, progress, token, report_dir=self.report_dir
            )
            return report, plan

        self._run_import(job)

    def _run_import(self, job: Any) -> None:
        self._busy(True)
        self.import_button.setEnabled(False)
        self._token = self.pool.submit_job(
            job,
            on_result=self._imported,
            on_error=self._failed,
            on_progress=self._on_progress,
        )[1]

    def replace_checked(self) -> None:
        """Import again only the ticked conflicts, replacing their cached copies."""
        if self.preview is None:
            return
        uids = {
            self.conflicts.topLevelItem(i).data(0, SOP_ROLE)
            for i in range(self.conflicts.topLevelItemCount())
            if self.conflicts.topLevelItem(i).checkState(0) == Qt.CheckState.Checked
        }
        if not uids:
            self.summary.setText("Tick the conflicts whose cached copy should be replaced.")
            return
        found, cache, plan = self.preview, self.cache, self._plan

        def job(progress: Any, token: CancelToken) -> tuple[ImportReport, ReconcilePlan | None]:
            return import_preview(
                found,
                cache,
                None,
                plan,
                progress,
                token,
                report_dir=self.report_dir,
                replace=uids,
                sop_uids=uids,
            ), plan

        self._run_import(job)

    def _imported(self, result: tuple[ImportReport, ReconcilePlan | None]) -> None:
        report, self._plan = result
        self.report = report
        self._busy(False)
        self.summary.setText(report.summary())
        self.report_view.setPlainText(report.to_text())
        self.conflicts.clear()
        for conflict in report.conflicts:
            item = QTreeWidgetItem(self.conflicts, [conflict.name, conflict.reason])
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(0, Qt.CheckState.Unchecked)
            item.setData(0, SOP_ROLE, conflict.sop_uid)
        self.conflicts.setVisible(bool(report.conflicts))
        self.replace_button.setVisible(bool(report.conflicts))

    def _failed(self, exc: BaseException) -> None:
        self._busy(False)
        self.summary.setText(
            "Cancelled." if isinstance(exc, Cancelled) else f"Failed: {describe_error(exc)}"
        )

    # ---- teardown -----------------------------------------------------------

    def _drop_preview(self) -> None:
        if self.preview is not None:
            self.pool.submit(self.preview.close)
            self.preview = None

    def done(self, result: int) -> None:  # noqa: D401 - Qt override
        self.cancel()
        self._drop_preview()
        self.pool.shutdown()
        super().done(result)


def open_import_dialog(window: Any, path: str = "") -> ImportDialog:
    """The import dialog; with `path` (a dropped folder, ISO or zip) it starts scanning it."""
    dialog = ImportDialog(window.cache, parent=window, config=window.config)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    if path:
        dialog.path_edit.setText(path)
        dialog.start_scan()
    return dialog


def install(window: Any) -> None:
    """File menu: Import from disc / folder / ISO / zip…"""
    from PySide6.QtGui import QAction

    action = QAction("Import from disc / folder / ISO / zip…", window)
    action.setShortcut("Ctrl+I")
    action.triggered.connect(lambda: open_import_dialog(window))
    window.add_menu_action("&File", action)
