"""Export studies as IHE PDI discs: File-set + DICOMDIR + README/INDEX.HTM (+ viewer),
as ISO images or burned to a drive, with a capacity check per medium, or as a
File-set in a folder.

`export_iso` is the one entry point the CLI and the GUI call: it plans the
instances, refuses (or splits across discs) what does not fit, builds each
disc's layout in a private work folder inside the cache's spool and writes
one ISO per disc. `burn` (burn.py) writes such an image to a drive and
reads it back; `export_folder` writes a File-set (DICOMDIR + files, syntaxes
kept) into a new folder. With `BurnOptions.deidentify` each writes a
de-identified copy instead (gearview/deid, SPEC §2.11), made in the same
work folder; the cache is never changed.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gearview.deid import CopiedInstance, DeidOptions, deidentify_files
from gearview.errors import GearviewError
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.media.burn import BurnBackend, VerifyResult, burn_image
from gearview.media.fileset import (
    DEFAULT_PROFILE,
    DiscLayout,
    MediaFile,
    MediaWriteError,
    PlannedInstance,
    add_dicomdir,
    build_layout,
    plan_instances,
)
from gearview.media.folder import check_target, write_folder
from gearview.media.iso import volume_label, write_iso
from gearview.media.pdi import add_pdi_content
from gearview.store import Cache, audit

log = logging.getLogger(__name__)

#: Usable bytes per medium (2048-byte sectors): CD-R 80 min, DVD±R, DVD+R DL, BD-R SL.
MEDIA_CAPACITY = {
    "CD": 360_000 * 2048,
    "DVD": 2_295_104 * 2048,
    "DVD-DL": 4_173_824 * 2048,
    "BD": 12_219_392 * 2048,
}
#: Room kept for the file system, DICOMDIR and PDI pages per disc.
OVERHEAD_BYTES = 4 << 20
PER_FILE_OVERHEAD = 2048
MAX_VIEWER_FILES = 20_000


class CapacityError(GearviewError):
    """The selection does not fit on the chosen medium."""

    hint = "choose a larger medium, fewer studies, or allow splitting across several discs"


@dataclass
class BurnOptions:
    medium: str = "CD"
    profile: str = DEFAULT_PROFILE
    label: str = "GEARVIEW"
    viewer_dir: Path | None = None
    previews: bool = True
    split: bool = False
    deidentify: DeidOptions | None = None
    #: Keep Original Attributes items of another identity (`[media] keep_original_attributes`).
    keep_original_attributes: bool = False


@dataclass
class ExportResult:
    images: list[Path] = field(default_factory=list)
    discs: list[DiscLayout] = field(default_factory=list)

    @property
    def instances(self) -> int:
        return sum(len(d.instances) for d in self.discs)


def capacity(medium: str) -> int:
    try:
        return MEDIA_CAPACITY[medium]
    except KeyError:
        raise GearviewError(
            f"unknown medium {medium!r}", hint=f"use one of {', '.join(MEDIA_CAPACITY)}"
        ) from None


def viewer_files(viewer_dir: Path | None) -> list[MediaFile]:
    """The portable viewer folder's regular files under VIEWER/ (links are not followed)."""
    if viewer_dir is None:
        return []
    if not viewer_dir.is_dir():
        raise GearviewError(
            f"portable viewer folder not found: {viewer_dir}",
            hint="fix media.portable_viewer in the configuration or burn without the viewer",
        )
    files = []
    for root, dirs, names in os.walk(viewer_dir, followlinks=False):
        dirs.sort()
        rel = Path(root).relative_to(viewer_dir).parts
        for name in sorted(names):
            path = Path(root) / name
            if path.is_symlink() or not path.is_file():
                continue
            files.append(MediaFile(("VIEWER", *rel, name), path.stat().st_size, source=path))
            if len(files) > MAX_VIEWER_FILES:
                raise GearviewError("the portable viewer folder has too many files")
    return files


def estimate(planned: Iterable[PlannedInstance], extra: Iterable[MediaFile] = ()) -> int:
    """Bytes a disc of these instances needs (files rounded to sectors plus overhead)."""
    total = OVERHEAD_BYTES
    for item in planned:
        total += item.estimated_size + PER_FILE_OVERHEAD
    for media in extra:
        total += media.size + PER_FILE_OVERHEAD
    return total


def split_discs(
    planned: list[PlannedInstance], extra: list[MediaFile], limit: int, split: bool
) -> list[list[PlannedInstance]]:
    """One group per disc; refuses with a clear message when splitting is off."""
    needed = estimate(planned, extra)
    if needed <= limit:
        return [planned]
    if not split:
        raise CapacityError(
            f"the selection needs about {needed / 1e6:.0f} MB but the medium "
            f"holds {limit / 1e6:.0f} MB"
        )
    base = estimate([], extra)
    groups: list[list[PlannedInstance]] = [[]]
    used = base
    for item in planned:
        cost = item.estimated_size + PER_FILE_OVERHEAD
        if base + cost > limit:
            raise CapacityError(
                f"instance {item.record.sop_instance_uid} alone does not fit on the medium"
            )
        if used + cost > limit and groups[-1]:
            groups.append([])
            used = base
        groups[-1].append(item)
        used += cost
    return groups


def plan(cache: Cache, study_uids: list[str], options: BurnOptions) -> list[list[PlannedInstance]]:
    """The discs this selection needs (for the GUI's capacity bar and the refusal)."""
    planned = plan_instances(cache, study_uids, options.profile)
    return split_discs(
        planned, viewer_files(options.viewer_dir), capacity(options.medium), options.split
    )


def build_disc(
    cache: Cache,
    planned: list[PlannedInstance],
    options: BurnOptions,
    label: str,
    workdir: Path,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> DiscLayout:
    layout, roots = build_layout(cache, planned, workdir, progress, token,
                                 keep_original_attributes=options.keep_original_attributes)
    add_dicomdir(layout, roots, volume_label(label)[:16])
    viewer = viewer_files(options.viewer_dir)
    add_pdi_content(layout, label, bool(viewer), options.previews)
    layout.files.extend(viewer)
    return layout


def _deidentified(item: PlannedInstance, copy: CopiedInstance) -> PlannedInstance:
    """The planned instance for its de-identified copy (new UIDs, file and study values)."""
    record = replace(
        item.record,
        sop_instance_uid=copy.sop_uid,
        series_instance_uid=copy.series_uid,
        study_instance_uid=copy.study_uid,
        path=copy.path,
        size=copy.size,
    )
    study = replace(item.study, study_instance_uid=copy.study_uid, **copy.study)
    series = replace(
        item.series,
        series_instance_uid=copy.series_uid,
        study_instance_uid=copy.study_uid,
        **copy.series,
    )
    size = item.estimated_size if item.convert else copy.size
    return replace(item, record=record, study=study, series=series, estimated_size=size)


def prepare(
    cache: Cache,
    groups: list[list[PlannedInstance]],
    options: BurnOptions,
    workdir: Path,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> list[list[PlannedInstance]]:
    """The groups as planned, or their de-identified copies written into `workdir`."""
    if options.deidentify is None:
        return groups
    flat = [item for group in groups for item in group]
    folder = workdir / "deidentified"
    folder.mkdir()
    copies = iter(
        deidentify_files(
            cache.home, [p.record.path for p in flat], folder, options.deidentify, progress, token
        )
    )
    return [[_deidentified(item, next(copies)) for item in group] for group in groups]


def _audit_export(
    cache: Cache,
    options: BurnOptions,
    study_uids: list[str],
    result: ExportResult,
    **where: Any,
) -> None:
    audit.append(
        cache.home,
        "media.export",
        studies=list(study_uids),
        **where,
        instances=result.instances,
        **_deid_audit(options, result.discs),
    )


def _deid_audit(options: BurnOptions, discs: list[DiscLayout]) -> dict[str, Any]:
    """What the audit line adds for a de-identified export: profile and new UIDs, no values."""
    if options.deidentify is None:
        return {}
    new_studies = sorted({p.study.study_instance_uid for d in discs for p in d.instances})
    return {"deidentified": {**options.deidentify.describe(), "new_studies": new_studies}}


def _image_paths(target: Path, count: int) -> list[Path]:
    if count == 1:
        return [target]
    return [target.with_name(f"{target.stem}_{i}{target.suffix}") for i in range(1, count + 1)]


def export_iso(
    cache: Cache,
    study_uids: list[str],
    target: Path,
    options: BurnOptions | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> ExportResult:
    """Write one ISO per disc (`NAME.iso`, or `NAME_1.iso`... when split)."""
    options = options or BurnOptions()
    token = token or CancelToken()
    groups = plan(cache, study_uids, options)
    result = ExportResult()
    targets = _image_paths(target, len(groups))
    cache.spool_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="export-", dir=cache.spool_dir))
    try:
        groups = prepare(cache, groups, options, workdir, progress, token)
        for i, (group, path) in enumerate(zip(groups, targets, strict=True), 1):
            label = options.label if len(groups) == 1 else f"{options.label}_{i}"
            layout = build_disc(cache, group, options, label, workdir, progress, token)
            write_iso(layout.files, path, label, progress, token)
            result.images.append(path)
            result.discs.append(layout)
            progress(Progress(i, len(groups), f"disc {i} of {len(groups)} written"))
    except BaseException:
        for path in result.images:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    log.info("exported %d instance(s) to %d image(s)", result.instances, len(result.images))
    _audit_export(
        cache,
        options,
        study_uids,
        result,
        profile=options.profile,
        images=[str(p) for p in result.images],
    )
    return result


def export_folder(
    cache: Cache,
    study_uids: list[str],
    target: Path,
    options: BurnOptions | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> ExportResult:
    """Write the studies as a File-set (DICOMDIR + DICOM/...) into the new folder `target`.

    Transfer syntaxes are kept (no profile conversion); nothing of the
    export exists at `target` unless all of it was written.
    """
    options = options or BurnOptions()
    check_target(target)
    planned = [
        replace(p, convert=False, estimated_size=p.record.size)
        for p in plan_instances(cache, study_uids, options.profile)
    ]
    cache.spool_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="export-", dir=cache.spool_dir))
    try:
        (planned,) = prepare(cache, [planned], options, workdir, progress, token)
        layout, roots = build_layout(cache, planned, workdir, progress, token)
        add_dicomdir(layout, roots, volume_label(options.label)[:16])
        write_folder(layout.files, target, progress, token)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = ExportResult(images=[], discs=[layout])
    log.info("exported %d instance(s) to a folder", result.instances)
    _audit_export(cache, options, study_uids, result, folder=str(target))
    return result


def burn_disc(
    cache: Cache,
    study_uids: list[str],
    device: str,
    options: BurnOptions | None = None,
    backend: BurnBackend | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> tuple[ExportResult, VerifyResult]:
    """Build the disc image in the spool, burn it, read it back; audited only when verified."""
    options = options or BurnOptions()
    if options.split:
        raise GearviewError(
            "splitting works for ISO files only", hint="write ISO images, then burn each"
        )
    cache.spool_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="burn-", dir=cache.spool_dir))
    try:
        first = plan(cache, study_uids, options)[:1]
        (planned,) = prepare(cache, first, options, workdir, progress, token)
        layout = build_disc(cache, planned, options, options.label, workdir, progress, token)
        image = workdir / "disc.iso"
        write_iso(layout.files, image, options.label, progress, token)
        verified = burn_image(image, device, backend, progress, token)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if verified is None:  # burn_image verifies by default; never report an unverified disc
        raise MediaWriteError("the disc was not verified")
    result = ExportResult(images=[], discs=[layout])
    audit.append(
        cache.home,
        "media.burn",
        studies=list(study_uids),
        device=device,
        profile=options.profile,
        instances=result.instances,
        verified=verified.files,
        **_deid_audit(options, result.discs),
    )
    return result, verified
