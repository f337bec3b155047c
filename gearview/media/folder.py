"""A disc layout written to a folder (USB stick, share) instead of an ISO image.

Everything is written into a hidden folder beside the target, fsynced, and
renamed to the target's name only when complete: a failure, a full stick or
a cancel leaves no partial export, only what was there before.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from gearview.errors import GearviewError
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.media.fileset import MediaFile
from gearview.store.atomic import fsync_dir, os_error_to_store_error

COPY_CHUNK = 1 << 20


def check_target(target: Path) -> None:
    """Refuse a target that exists and is not an empty folder (nothing is ever overwritten)."""
    if not target.exists() and not target.is_symlink():
        if not target.parent.is_dir():
            raise GearviewError(
                f"the folder {target.parent} does not exist", hint="create it or choose another"
            )
        return
    if target.is_symlink() or not target.is_dir() or any(target.iterdir()):
        raise GearviewError(
            f"{target} already exists and is not an empty folder",
            hint="choose a new folder name; an export never overwrites files",
        )


def _write_one(media: MediaFile, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "xb") as out:
        if media.data is not None:
            out.write(media.data)
        else:
            with open(media.source, "rb") as src:  # type: ignore[arg-type]
                shutil.copyfileobj(src, out, COPY_CHUNK)
        out.flush()
        os.fsync(out.fileno())


def write_folder(
    files: list[MediaFile],
    target: Path,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> int:
    """Write the files under `target` (created); returns the bytes written."""
    check_target(target)
    temp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.part"
    total = sum(f.size for f in files)
    written = 0
    try:
        temp.mkdir()
        folders = {temp}
        for i, media in enumerate(files):
            if token is not None:
                token.check()
            dest = temp.joinpath(*media.parts)
            _write_one(media, dest)
            folders.update(p for p in dest.parents if temp in p.parents or p == temp)
            written += media.size
            if i % 16 == 0:
                progress(Progress(written, total, f"writing {target.name}"))
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(folder)
        if target.is_dir():
            target.rmdir()  # checked empty above
        os.rename(temp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        shutil.rmtree(temp, ignore_errors=True)
        raise os_error_to_store_error(exc, f"the export folder {target}") from exc
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    progress(Progress(total, total, f"{len(files)} file(s) written to {target}"))
    return written
