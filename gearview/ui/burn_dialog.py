"""Burn dialog: selected studies, medium with a capacity bar, profile, viewer on/off,
label, ISO file or drive, progress and the read-back verification result.

Planning (sizes after conversion), the safety checks, writing and burning
run on the dialog's worker pool; the capacity bar refuses (Burn disabled, red
message) a selection that does not fit unless splitting across discs is
ticked, and safety findings turn Burn into "Burn anyway…", which needs a
reason (audited). The De-identify box burns a de-identified copy instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from gearview.config import Config
from gearview.display import format_date, format_person_name
from gearview.errors import Cancelled, describe_error
from gearview.jobs import CancelToken, Progress
from gearview.media.burn import list_burners
from gearview.media.export import (
    MEDIA_CAPACITY,
    BurnOptions,
    burn_disc,
    capacity,
    estimate,
    export_iso,
    viewer_files,
)
from gearview.media.fileset import DEFAULT_PROFILE, PROFILES, PlannedInstance, plan_instances
from gearview.qc.checks import check_studies, guard
from gearview.store import Cache
from gearview.ui.deid_options import DeidentifyBox
from gearview.ui.findings_panel import FindingsPanel
from gearview.ui.workers import WorkerPool

OVER_STYLE = "QProgressBar::chunk { background: #c62828; }"
NO_VIEWER = (
    "No portable viewer is configured: an administrator sets media.portable_viewer "
    "(a folder holding the viewer) in config.toml; see the admin guide."
)


class BurnDialog(QDialog):
    def __init__(
        self,
        cache: Cache,
        study_uids: list[str],
        config: Config | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Burn patient disc (IHE PDI)")
        self.resize(640, 560)
        self.cache = cache
        self.study_uids = list(study_uids)
        self.config = config or cache.config
        self.pool = WorkerPool(self)
        self.planned: list[PlannedInstance] | None = None
        self.needed = 0
        self.fits = False
        self.result_text = ""
        self._token: CancelToken | None = None
        self._generation = 0
        self._build()
        self.pool.submit(
            lambda: self.cache.studies_by_uid(self.study_uids),
            on_result=self._fill_studies,
            on_error=self._failed,
        )
        self.pool.submit(list_burners, on_result=self._fill_drives, on_error=lambda e: None)
        self.pool.submit(check_studies, self.cache, self.study_uids,
                         on_result=self.checks.show_findings,
                         on_error=lambda exc: self.checks.show_error(describe_error(exc)))
        self.replan()

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.studies = QListWidget()
        self.studies.setMaximumHeight(120)
        layout.addWidget(QLabel("Studies"))
        layout.addWidget(self.studies)
        form = QFormLayout()
        self.medium = QComboBox()
        self.medium.addItems(list(MEDIA_CAPACITY))
        default_medium = self.config.media.default_medium
        if default_medium in MEDIA_CAPACITY:
            self.medium.setCurrentText(default_medium)
        self.medium.currentTextChanged.connect(lambda _t: self._update_bar())
        self.profile = QComboBox()
        for key, (title, _ts) in PROFILES.items():
            self.profile.addItem(title, key)
        self.profile.setCurrentIndex(list(PROFILES).index(DEFAULT_PROFILE))
        self.profile.currentIndexChanged.connect(lambda _i: self.replan())
        self.viewer = QCheckBox("Copy the portable viewer")
        self.viewer.setEnabled(bool(self.config.media.portable_viewer))
        self.viewer.setChecked(bool(self.config.media.portable_viewer))
        if not self.config.media.portable_viewer:
            self.viewer.setText("Copy the portable viewer (none is set up on this station)")
            self.viewer.setToolTip(NO_VIEWER)
        self.viewer.toggled.connect(lambda _b: self.replan())
        self.split = QCheckBox("Split across several discs when it does not fit (ISO files only)")
        self.split.toggled.connect(lambda _b: self._update_bar())
        self.label = QLineEdit("GEARVIEW")
        self.label.setMaxLength(32)
        form.addRow("Medium", self.medium)
        form.addRow("Profile", self.profile)
        form.addRow("", self.viewer)
        form.addRow("Volume label", self.label)
        form.addRow("", self.split)
        layout.addLayout(form)
        self.deid = DeidentifyBox(self.cache, self.study_uids, parent=self)
        self.deid.changed.connect(self._update_bar)
        layout.addWidget(self.deid)
        self.checks = FindingsPanel("burned", self)
        self.checks.changed.connect(self._update_bar)
        layout.addWidget(self.checks)

        self.capacity_bar = QProgressBar()
        self.capacity_bar.setRange(0, 1000)
        self.capacity_label = QLabel("Estimating size…")
        layout.addWidget(self.capacity_bar)
        layout.addWidget(self.capacity_label)

        target = QHBoxLayout()
        self.to_iso = QRadioButton("ISO file")
        self.to_drive = QRadioButton("Drive")
        self.to_iso.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.to_iso)
        group.addButton(self.to_drive)
        self.iso_path = QLineEdit(str(Path.home() / "patient-disc.iso"))
        browse = QPushButton("…")
        browse.clicked.connect(self._pick_iso)
        self.drive = QComboBox()
        self.drive.setEditable(True)
        if self.config.media.burn_device:
            self.drive.addItem(self.config.media.burn_device)
        for widget in (self.to_iso, self.iso_path, browse, self.to_drive, self.drive):
            target.addWidget(widget)
        layout.addLayout(target)
        self.to_drive.toggled.connect(lambda _b: self._update_bar())

        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.burn_button = QPushButton("Burn")
        self.burn_button.setEnabled(False)
        self.burn_button.clicked.connect(self.start_burn)
        close = QPushButton("Close")
        close.clicked.connect(self.reject)
        for widget in (self.progress, self.cancel_button, self.burn_button, close):
            buttons.addWidget(widget)
        layout.addWidget(self.status)
        layout.addLayout(buttons)

    def _fill_studies(self, studies: list[Any]) -> None:
        for study in studies:
            self.studies.addItem(
                f"{format_person_name(study.patient_name)} ({study.patient_id}) — "
                f"{format_date(study.study_date)} {study.study_description} — "
                f"{study.number_of_study_related_instances} image(s)"
            )

    def _fill_drives(self, drives: list[str]) -> None:
        for drive in drives:
            if self.drive.findText(drive) < 0:
                self.drive.addItem(drive)

    def _pick_iso(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "ISO image", self.iso_path.text(), "ISO (*.iso)"
        )
        if path:
            self.iso_path.setText(path)

    def options(self) -> BurnOptions:
        viewer = (
            Path(self.config.media.portable_viewer).expanduser()
            if self.viewer.isChecked() and self.config.media.portable_viewer
            else None
        )
        return BurnOptions(
            medium=self.medium.currentText(),
            profile=self.profile.currentData(),
            label=self.label.text() or "GEARVIEW",
            viewer_dir=viewer,
            split=self.split.isChecked() and self.to_iso.isChecked(),
            deidentify=self.deid.options(),
            keep_original_attributes=self.config.media.keep_original_attributes,
        )

    # ---- capacity -----------------------------------------------------------

    def replan(self) -> None:
        """Re-estimate the size (conversion changes it) on a worker."""
        self.planned = None
        self.burn_button.setEnabled(False)
        self.capacity_label.setText("Estimating size…")
        options = self.options()

        def job(_progress: Any, _token: CancelToken) -> tuple[list[PlannedInstance], int]:
            planned = plan_instances(self.cache, self.study_uids, options.profile)
            return planned, estimate(planned, viewer_files(options.viewer_dir))

        self._generation += 1
        generation = self._generation
        self.pool.submit_job(
            job,
            on_result=lambda result: self._planned(generation, result),
            on_error=self._failed,
        )

    def _planned(self, generation: int, result: tuple[list[PlannedInstance], int]) -> None:
        if generation != self._generation:  # a newer estimate is on its way
            return
        self.planned, self.needed = result
        self._update_bar()

    def _update_bar(self) -> None:
        if self.planned is None:
            return
        limit = capacity(self.medium.currentText())
        ratio = self.needed / limit
        percent = f"{ratio:.0%}"  # the bar and the label show the same rounded figure
        self.capacity_bar.setValue(min(1000, round(ratio * 1000)))
        self.capacity_bar.setFormat(percent)
        self.fits = ratio <= 1.0
        discs = -(-self.needed // limit)
        text = f"{self.needed / 1e6:.0f} MB of {limit / 1e6:.0f} MB ({percent})"
        if self.fits:
            self.capacity_bar.setStyleSheet("")
        elif self.options().split:
            self.capacity_bar.setStyleSheet(OVER_STYLE)
            text += f" — will be split across about {discs} discs"
        else:
            self.capacity_bar.setStyleSheet(OVER_STYLE)
            text += " — does not fit: choose a larger medium, fewer studies or split (ISO)"
        self.capacity_label.setText(text)
        self.burn_button.setText("Burn anyway…" if self.checks.findings else "Burn")
        self.burn_button.setEnabled(self.can_burn())

    def can_burn(self) -> bool:
        return (
            self.planned is not None
            and bool(self.planned)
            and (self.fits or self.options().split)
            and self.deid.ready()
            and (self.checks.allows or (self.deid.options() is not None and self.checks.checked))
        )

    # ---- burning ------------------------------------------------------------

    def cancel(self) -> None:
        if self._token is not None:
            self._token.cancel()

    def _busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setEnabled(busy)
        self.burn_button.setEnabled(not busy and self.can_burn())

    def _on_progress(self, progress: Progress) -> None:
        self.progress.setMaximum(progress.total or 0)
        self.progress.setValue(progress.done if progress.total else 0)
        self.status.setText(progress.message)

    def start_burn(self) -> None:
        if not self.can_burn():
            return
        options = self.options()
        to_iso = self.to_iso.isChecked()
        target = Path(self.iso_path.text()).expanduser() if to_iso else None
        device = self.drive.currentText().strip()
        if not to_iso and not device:
            self.status.setText("Choose a drive.")
            return
        self._busy(True)
        reason = self.checks.override_reason
        where = str(target) if target is not None else device

        def job(progress: Any, token: CancelToken) -> str:
            if options.deidentify is None:  # a de-identified copy has no identity to mix up
                guard(self.cache, self.study_uids, "burn", target=where, force=bool(reason),
                      reason=reason)
            if target is not None:
                result = export_iso(self.cache, self.study_uids, target, options, progress, token)
                return (
                    f"Written {result.instances} instance(s) to "
                    f"{', '.join(str(p) for p in result.images)}"
                )
            result, verified = burn_disc(
                self.cache, self.study_uids, device, options, progress=progress, token=token
            )
            return f"Burned {result.instances} instance(s) to {device}: {verified.summary()}"

        self._token = self.pool.submit_job(
            job, on_result=self._burned, on_error=self._failed, on_progress=self._on_progress
        )[1]

    def _burned(self, text: str) -> None:
        self._busy(False)
        self.result_text = text
        self.status.setText(text)

    def _failed(self, exc: BaseException) -> None:
        self._busy(False)
        self.status.setText(
            "Cancelled: nothing was written."
            if isinstance(exc, Cancelled)
            else f"Failed: {describe_error(exc)}"
        )

    def done(self, result: int) -> None:  # noqa: D401 - Qt override
        self.cancel()
        self.pool.shutdown()
        self.deid.shutdown()
        super().done(result)


def open_burn_dialog(window: Any, study_uids: list[str]) -> BurnDialog | None:
    if not study_uids:
        window.statusBar().showMessage("Select one or more studies to burn first.", 5000)
        return None
    dialog = BurnDialog(window.cache, study_uids, window.config, parent=window)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


def install(window: Any) -> None:
    """Study menu + study list context menu: Burn disc…"""
    window.add_study_action("Burn disc…", lambda uids: open_burn_dialog(window, uids), "Ctrl+B")
