"""Import outside studies from patient media: preview first, then what the user ticked.

`preview(path)` classifies every file on a folder / DICOMDIR / ISO / zip;
`import_preview(preview, cache, ...)` copies the selected instances through
`Cache.add_file` (validated, preamble zeroed), optionally reconciled to local
patients (`ReconcilePlan`), with progress and cancel. Every file not imported
— skipped during the preview, in conflict with another patient's or study's
cached instance, or failing now — is listed with its reason in the report.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Collection
from pathlib import Path

from gearview.config import Config
from gearview.errors import InvalidDicomError, StorageFullError, StoreError
from gearview.identity import mappings
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.media.conflicts import Conflict, find_conflict
from gearview.media.reconcile import (
    PROFILE,
    OutsideKey,
    OutsidePatient,
    Reconcile,
    ReconcilePlan,
    ReconcileRequest,
    Target,
    complete_plan,
    outside_patients,
    reconcile_file,
)
from gearview.media.report import ImportReport
from gearview.media.scan import FoundInstance, Preview, preview_path
from gearview.media.sources import open_source, sniff_kind
from gearview.store import Cache, StoredInstance, audit

log = logging.getLogger(__name__)
IMPORT_WORK = "media-import"

__all__ = [
    "ImportReport",
    "Reconcile",
    "ReconcilePlan",
    "ReconcileRequest",
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


def _remembered_hints(
    cache: Cache, patients: dict[OutsideKey, OutsidePatient], plan: ReconcilePlan | None
) -> list[str]:
    """Outside patients imported unreconciled that were reconciled on an earlier import."""
    hints = []
    for key, patient in patients.items():
        if plan is not None and key in plan.targets:
            continue
        known = mappings.remembered(cache.home, *key, patient.institution)
        if known is not None:
            local = known.identity
            issuer = f"@{local.issuer}" if local.issuer else ""
            hints.append(
                f"outside patient {patient.describe()} was reconciled to {local.patient_id!r} "
                f"before: use --map {key[0]}={local.patient_id}{issuer} (or the import dialog)"
            )
    return hints


def _target_patient(found: FoundInstance, plan: ReconcilePlan | None) -> tuple[str, str]:
    target = plan.target_for(found.info) if plan is not None else None
    if target is not None:
        return target.identity.key
    return (found.info.patient_id, found.info.issuer_of_patient_id)


def _import_one(
    cache: Cache, found: FoundInstance, target: Target | None, source_ae: str, work: Path,
    replace: bool,
) -> StoredInstance:
    if target is None:
        return cache.add_file(found.path, source_ae, replace=replace)
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / f"{uuid.uuid4().hex}.rec"
    try:
        reconcile_file(found.path, tmp, target)
        return cache.add_file(tmp, source_ae, replace=replace)
    finally:
        tmp.unlink(missing_ok=True)


def _may_replace(replace: bool | Collection[str], sop_uid: str) -> bool:
    return replace is True or (not isinstance(replace, bool) and sop_uid in replace)


def import_preview(
    preview: Preview,
    cache: Cache,
    series_uids: Collection[str] | None = None,
    plan: ReconcilePlan | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
    source_ae: str = "",
    report_dir: Path | None = None,
    replace: bool | Collection[str] = False,
    sop_uids: Collection[str] | None = None,
) -> ImportReport:
    """Import the chosen series (all when None; only `sop_uids` when given).

    Never raises for one bad file. An instance cached under another patient
    or study is not replaced (a conflict in the report) unless `replace` is
    True or holds its SOP Instance UID. The whole import is one cache
    operation: views hear one CACHE_CHANGED.
    """
    with cache.operation("import"):
        return _import_preview(
            preview, cache, series_uids, plan, progress, token, source_ae, report_dir,
            replace, sop_uids,
        )


def _import_preview(
    preview: Preview,
    cache: Cache,
    series_uids: Collection[str] | None,
    plan: ReconcilePlan | None,
    progress: ProgressCallback,
    token: CancelToken | None,
    source_ae: str,
    report_dir: Path | None,
    replace: bool | Collection[str],
    sop_uids: Collection[str] | None,
) -> ImportReport:
    token = token or CancelToken()
    report = ImportReport(source=preview.label, partial_medium=preview.partial)
    for skipped in preview.skipped:
        report.add(skipped.name, skipped.reason)
    chosen = _selected(preview, series_uids)
    for found in preview.instances:
        if series_uids is not None and found.info.series_instance_uid not in series_uids:
            report.add(found.name, "not selected")
    if sop_uids is not None:
        chosen = [f for f in chosen if f.info.sop_instance_uid in sop_uids]
    patients = outside_patients(f.info for f in chosen)
    if plan is not None:
        report.warnings.extend(plan.warnings)
        report.reconciled = plan.describe(patients)
    report.warnings.extend(_remembered_hints(cache, patients, plan))
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
        info = found.info
        replacing = _may_replace(replace, info.sop_instance_uid)
        # what a replace overrides; otherwise the cache decides, after re-applying corrections
        overridden = find_conflict(
            cache.conn,
            found.name,
            info.sop_instance_uid,
            info.study_instance_uid,
            _target_patient(found, plan),
        ) if replacing else None
        try:
            target = plan.target_for(info) if plan is not None else None
            stored = _import_one(cache, found, target, source_ae, work, replace=replacing)
        except StorageFullError as exc:
            report.add(found.name, exc.one_line())
            report.not_imported.extend(
                (f.name, "not imported: storage full") for f in chosen[done + 1 :]
            )
            break
        except (InvalidDicomError, StoreError) as exc:
            report.add(found.name, exc.one_line())
            continue
        if stored.conflict is not None:
            conflict = Conflict.refused(found.name, stored.conflict)
            report.conflicts.append(conflict)
            report.add(found.name, conflict.reason)
            continue
        report.imported += 1
        report.warnings.extend(f"{found.name}: {text}" for text in stored.info.warnings)
        report.replaced += int(stored.replaced)
        report.conflicts_replaced += int(overridden is not None)
        report.studies.add(stored.info.study_instance_uid)
        report.changes.merge(stored.changes)
    progress(Progress(total, total, "import finished"))
    if report_dir is not None:
        report.save(report_dir)
    if report.imported:
        if plan is not None:
            _remember(cache, plan, patients)
        _audit(cache, report, plan)
    return report


def plan_targets(
    preview: Preview,
    cache: Cache,
    series_uids: Collection[str] | None,
    targets: dict[OutsideKey, Target],
    token: CancelToken | None = None,
    config: Config | None = None,
) -> ReconcilePlan | None:
    """The plan for the patients of the chosen series (the import dialog's rows).

    Targets given by ID only get the local record's demographics (cache, then
    the `query` nodes of `config`, the cache's by default).
    """
    patients = outside_patients(f.info for f in _selected(preview, series_uids))
    wanted = {key: target for key, target in targets.items() if key in patients}
    if not wanted:
        return None
    config = config or cache.config
    query_nodes = [n for n in config.nodes if "query" in n.roles]
    return complete_plan(ReconcilePlan(wanted), patients, cache.conn, config, query_nodes, token)


def _remember(
    cache: Cache, plan: ReconcilePlan, patients: dict[OutsideKey, OutsidePatient]
) -> None:
    """The next disc from the same hospital proposes the same local patients."""
    for key, target in plan.targets.items():
        patient = patients.get(key)
        if patient is not None:
            mappings.remember(cache.home, patient.identity, target.identity, patient.institution)


def _audit(cache: Cache, report: ImportReport, plan: ReconcilePlan | None) -> None:
    """One audit record per import; a reconciliation names outside and local identities."""
    fields: dict[str, object] = {
        "source": report.source,
        "imported": report.imported,
        "studies": sorted(report.studies),
        "not_imported": len(report.not_imported),
        "conflicts": len(report.conflicts),
        "conflicts_replaced": report.conflicts_replaced,
        "report": str(report.path) if report.path else None,
    }
    if plan is not None:
        fields["profile"] = PROFILE
        fields["reconciled"] = report.reconciled
        fields["warnings"] = report.warnings
    audit.append(cache.home, "media.import", **fields)


def import_path(
    path: str | os.PathLike[str],
    cache: Cache,
    request: ReconcileRequest | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
    report_dir: Path | None = None,
    replace: bool = False,
) -> ImportReport:
    """Preview and import everything importable (the CLI path).

    A reconciliation that cannot be planned (several patients for one ID, an
    unknown outside ID) is refused before anything is imported.
    """
    with preview(path, cache, progress, token) as found:
        plan = None
        if request is not None:
            patients = outside_patients(f.info for f in found.instances)
            plan = request.plan(patients, cache.conn, cache.config, token)
        return import_preview(
            found,
            cache,
            None,
            plan,
            progress,
            token,
            report_dir=report_dir if report_dir is not None else cache.home.logs_dir / "imports",
            replace=replace,
        )
