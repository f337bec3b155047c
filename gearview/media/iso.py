"""ISO 9660 (level 1) + Joliet images with pycdlib, written atomically.

DICOM File IDs are already level-1 names; other files (a portable viewer)
get sanitised 8.3 names in the ISO 9660 tree and keep their real names in
the Joliet tree. The image is written to a temporary file beside the target
and renamed only when complete: a failure (disk full, cancel) leaves no image.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from gearview.errors import Cancelled
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.media.fileset import MediaFile, MediaWriteError
from gearview.store.atomic import fsync_dir, os_error_to_store_error

MAX_LEVEL1_DEPTH = 8
_NOT_D = re.compile(r"[^A-Z0-9_]")


def volume_label(text: str) -> str:
    """An ISO 9660 volume identifier: d-characters, at most 32."""
    label = _NOT_D.sub("_", text.upper())[:32]
    return label or "GEARVIEW"


class _Namer:
    """Unique level-1 names per directory for arbitrary (viewer) file names."""

    def __init__(self) -> None:
        self.used: dict[str, set[str]] = {}
        self.dirs: dict[tuple[str, ...], str] = {(): ""}

    def _unique(self, parent: str, stem: str, ext: str, limit: int) -> str:
        taken = self.used.setdefault(parent, set())
        base = stem[:limit] or "F"
        name = base + (f".{ext}" if ext else "")
        n = 1
        while name in taken:
            suffix = f"_{n}"
            name = base[: limit - len(suffix)] + suffix + (f".{ext}" if ext else "")
            n += 1
        taken.add(name)
        return name

    def directory(self, parts: tuple[str, ...]) -> str:
        if parts in self.dirs:
            return self.dirs[parts]
        parent = self.directory(parts[:-1])
        name = self._unique(parent, _NOT_D.sub("_", parts[-1].upper()), "", 8)
        self.dirs[parts] = f"{parent}/{name}"
        return self.dirs[parts]

    def file(self, parts: tuple[str, ...]) -> str:
        parent = self.directory(parts[:-1])
        stem, _, ext = (
            parts[-1].upper().rpartition(".") if "." in parts[-1] else (parts[-1].upper(), "", "")
        )
        name = self._unique(parent, _NOT_D.sub("_", stem), _NOT_D.sub("_", ext)[:3], 8)
        # ECMA-119 7.5.1: the "." separator is present even without an extension
        return f"{parent}/{name if '.' in name else name + '.'};1"


def _check_depth(files: list[MediaFile]) -> None:
    for media in files:
        if len(media.parts) > MAX_LEVEL1_DEPTH:
            raise MediaWriteError(
                f"{media.name} is nested deeper than {MAX_LEVEL1_DEPTH} levels",
                hint="flatten the portable viewer folder",
            )


def write_iso(
    files: list[MediaFile],
    target: Path,
    label: str,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
) -> int:
    """Write the image; returns its size. Raises MediaWriteError / StoreError, leaving nothing."""
    _check_depth(files)
    iso = pycdlib.PyCdlib()
    iso.new(
        interchange_level=1,
        vol_ident=volume_label(label),
        joliet=3,
        app_ident_str="GEARVIEW",
        preparer_ident_str="GEARVIEW",
    )
    namer = _Namer()
    handles = []
    try:
        for media in files:
            for depth in range(1, len(media.parts)):
                dir_parts = media.parts[:depth]
                if dir_parts not in namer.dirs:
                    iso.add_directory(
                        namer.directory(dir_parts), joliet_path="/" + "/".join(dir_parts)
                    )
            iso_path = namer.file(media.parts)
            joliet = "/" + "/".join(media.parts)
            if media.data is not None:
                fp = io.BytesIO(media.data)
                handles.append(fp)
                iso.add_fp(fp, len(media.data), iso_path, joliet_path=joliet)
            else:
                iso.add_file(str(media.source), iso_path, joliet_path=joliet)
        return _write_atomically(iso, target, progress, token)
    except PyCdlibException as exc:
        raise MediaWriteError(f"cannot build the ISO image: {exc}") from None
    finally:
        try:
            iso.close()
        except PyCdlibException:
            pass


def _write_atomically(
    iso: pycdlib.PyCdlib, target: Path, progress: ProgressCallback, token: CancelToken | None
) -> int:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")

    def report(done: int, total: int, _opaque: object) -> None:
        if token is not None and token.cancelled:
            raise Cancelled("cancelled by the user")
        progress(Progress(done, total, "writing the ISO image"))

    try:
        with open(tmp, "xb") as fh:
            iso.write_fp(fh, progress_cb=report)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise os_error_to_store_error(exc, "the ISO image") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    return target.stat().st_size


def iso_checksums(image: Path | str) -> dict[str, str]:
    """SHA-256 of every file in an image (by Joliet path when present) — for verification."""
    iso = pycdlib.PyCdlib()
    try:
        with open(image, "rb") as fh:
            iso.open_fp(fh)
            facade = "joliet_path" if iso.has_joliet() else "iso_path"
            sums = {path: _digest(iso, facade, path) for path in _walk(iso, facade)}
            iso.close()
            return sums
    except (PyCdlibException, OSError) as exc:
        raise MediaWriteError(f"cannot read back the disc: {exc}") from None


def _walk(iso: pycdlib.PyCdlib, facade: str) -> Iterator[str]:
    for root, _dirs, files in iso.walk(**{facade: "/"}):
        for name in files:
            yield f"{root.rstrip('/')}/{name}"


def _digest(iso: pycdlib.PyCdlib, facade: str, path: str) -> str:
    hasher = _HashWriter()
    iso.get_file_from_iso_fp(hasher, **{facade: path})
    return hasher.sha.hexdigest()


class _HashWriter:
    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        return len(data)
