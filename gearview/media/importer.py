"""Import outside studies from patient media: preview first, then what the user ticked.

`preview(path)` classifies every file on a folder / DICOMDIR / ISO / zip;
`import_preview(preview, cache, ...)` copies the selected instances through
`Cache.add_file` (validated, preamble zeroed), optionally reconciled to a local
Patient ID, with progress and cancel. Every file not imported — skipped during
the preview or failing now — is listed with its reason in the report.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Collection
from pathlib import Path

from gearview.edit import audit
from gearview.errors import InvalidDicomError, StorageFullError, StoreError
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.media.reconcile import Reconcile, demographic_warnings, reconcile_file
from gearview.media.report import ImportReport
from gearview.media.scan import FoundInstance, Preview, preview_path
from gearview.media.sources import open_source, sniff_kind
from gearview.store import Cache

log = logging.getLogger(__name__)
IMPORT_WORK = "media-import"

__all__ = [
    "ImportReport",
    "Reconcile",
    "import_path",
    "import_preview",
    "preview",
    "sniff_kind",
    "open_source",
]


def preview(
    path: str | os.PathLike[str],
    cache: Cache,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> Preview:
    """Classify every file of a medium (archive members land in the cache's spool)."""
    return preview_path(path, cache.spool_dir / IMPORT_WORK, progress, token)


def _selected(preview: Preview, series_uids: Collection[str] | None) -> list[FoundInstance]:
    if series_uids is None:
        return list(preview.instances)
    return [f for f in preview.instances if f.info.series_instance_uid in series_uids]


def _still_same_file(found: FoundInstance) -> bool:
    """A folder member must not have become a link since the preview."""
    return os.path.realpath(found.path) == str(found.path) and found.path.is_file()


def _reconcile_warnings(cache: Cache, chosen: list[FoundInstance], target: Reconcile) -> list[str]:
    outside = {
        (
            f.info.patient_id,
            f.info.issuer_of_patient_id,
            f.info.patient_name,
            f.info.birth_date,
            f.info.sex,
        )
        for f in chosen
    }
    warnings = []
    if len(outside) > 1:
        warnings.append(
            f"{len(outside)} different outside patients are being reconciled to "
            f"patient ID {target.patient_id!r}"
        )
    for pid, issuer, name, birth, sex in sorted(outside):
        for text in demographic_warnings(cache.conn, target, name, birth, sex):
            warnings.append(f"outside patient ID {pid!r} (issuer {issuer!r}): {text}")
    return warnings


def _import_one(
    cache: Cache, found: FoundInstance, target: Reconcile | None, source_ae: str, work: Path
) -> object:
    if target is None:
        return cache.add_file(found.path, source_ae)
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / f"{uuid.uuid4().hex}.rec"
    try:
        reconcile_file(found.path, tmp, target)
        return cache.add_file(tmp, source_ae)
    finally:
        tmp.unlink(missing_ok=True)


def import_preview(
    preview: Preview,
    cache: Cache,
    series_uids: Collection[str] | None = None,
    reconcile: Reconcile | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
    source_ae: str = "",
    report_dir: Path | None = None,
) -> ImportReport:
    """Import the chosen series (all when None); never raises for one bad file."""
    token = token or CancelToken()
    report = ImportReport(source=preview.label, partial_medium=preview.partial)
    for skipped in preview.skipped:
        report.add(skipped.name, skipped.reason)
    chosen = _selected(preview, series_uids)
    for found in preview.instances:
        if series_uids is not None and found.info.series_instance_uid not in series_uids:
            report.add(found.name, "not selected")
    if reconcile is not None:
        report.warnings.extend(_reconcile_warnings(cache, chosen, reconcile))
    work = cache.spool_dir / IMPORT_WORK
    total = len(chosen)
    for done, found in enumerate(chosen):
        progress(Progress(done, total, found.name))
        if token.cancelled:
            report.cancelled = True
            report.not_imported.extend((f.name, "cancelled before import") for f in chosen[done:])
            break
        if preview.workdir is None or not found.path.is_relative_to(preview.workdir):
            if not _still_same_file(found):
                report.add(
                    found.name, "changed on the medium since the preview (now a link or gone)"
                )
                continue
        try:
            stored = _import_one(cache, found, reconcile, source_ae, work)
        except StorageFullError as exc:
            report.add(found.name, exc.one_line())
            report.not_imported.extend(
                (f.name, "not imported: storage full") for f in chosen[done + 1 :]
            )
            break
        except (InvalidDicomError, StoreError) as exc:
            report.add(found.name, exc.one_line())
            continue
        report.imported += 1
        report.replaced += int(stored.replaced)
        report.studies.add(stored.info.study_instance_uid)
        report.changes.merge(stored.changes)
    progress(Progress(total, total, "import finished"))
    if report_dir is not None:
        report.save(report_dir)
    if report.imported:
        _audit(cache, report, chosen, reconcile)
    return report


def _audit(
    cache: Cache, report: ImportReport, chosen: list[FoundInstance], reconcile: Reconcile | None
) -> None:
    """One audit record per import; a reconciliation names the outside IDs it replaced."""
    fields: dict[str, object] = {
        "source": report.source,
        "imported": report.imported,
        "studies": sorted(report.studies),
        "not_imported": len(report.not_imported),
        "report": str(report.path) if report.path else None,
    }
    if reconcile is not None:
        fields["reconciled_to"] = {"patient_id": reconcile.patient_id, "issuer": reconcile.issuer}
        fields["outside_ids"] = sorted(
            {(f.info.patient_id, f.info.issuer_of_patient_id) for f in chosen}
        )
        fields["warnings"] = report.warnings
    audit.append(cache.home, "media.import", **fields)


def import_path(
    path: str | os.PathLike[str],
    cache: Cache,
    reconcile: Reconcile | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
    report_dir: Path | None = None,
) -> ImportReport:
    """Preview and import everything importable (the CLI path)."""
    with preview(path, cache, progress, token) as found:
        return import_preview(
            found,
            cache,
            None,
            reconcile,
            progress,
            token,
            report_dir=report_dir if report_dir is not None else cache.home.logs_dir / "imports",
        )
