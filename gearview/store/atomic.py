"""Crash-safe file writes: spool file, fsync, rename, directory fsync.

Every writer of files we must not lose (cache instances, config, media
output) goes through here so the sequence is written once and tested once.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from gearview.errors import StorageFullError, StoragePermissionError, StoreError

_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_PERM = {errno.EACCES, errno.EPERM, errno.EROFS}
_SPOOL_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
)


def os_error_to_store_error(exc: OSError, what: str) -> StoreError:
    """Map an OSError to the store error a user (and a C-STORE status) understands."""
    if exc.errno in _FULL:
        return StorageFullError(f"no space left while writing {what}")
    if exc.errno in _PERM:
        return StoragePermissionError(f"permission denied while writing {what}")
    return StoreError(f"could not write {what}: {exc.strerror or exc}")


def fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: Spool subfolders of one batch of new files (`gearview.store.spool_copy`).
BATCH_PREFIX = "batch-"


def spool_path(spool_dir: Path) -> Path:
    return spool_dir / f"{uuid.uuid4().hex}.part"


@contextmanager
def _removed_on_failure(path: Path, what: str) -> Iterator[None]:
    """Delete the half-written `path` on any failure; OS errors become store errors."""
    try:
        yield
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise os_error_to_store_error(exc, what) from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise


@contextmanager
def spool_writer(spool_dir: Path, what: str) -> Iterator[tuple[Path, BinaryIO]]:
    """Open a new spool file; fsynced on success, removed on any failure."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    path = spool_path(spool_dir)
    with _removed_on_failure(path, what), open(path, "xb") as fh:
        yield path, fh
        fh.flush()
        os.fsync(fh.fileno())


@contextmanager
def spool_fd(path: Path, what: str, fsync: bool = True) -> Iterator[int]:
    """`spool_writer` on a bare descriptor and a path the caller picked, for hot loops.

    With `fsync=False` the caller makes the file durable itself (one
    `FileIO.sync_filesystem` for a whole batch) before anything refers to it.
    """
    with _removed_on_failure(path, what):
        fd = os.open(path, _SPOOL_FLAGS, 0o600)
        try:
            yield fd
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)


def place(spool_file: Path, target: Path, what: str) -> None:
    """Rename a fsynced spool file into place; the caller makes it durable (`fsync_dir`)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(spool_file, target)
    except OSError as exc:
        spool_file.unlink(missing_ok=True)
        raise os_error_to_store_error(exc, what) from exc


def publish(spool_file: Path, target: Path, what: str) -> None:
    """Rename a fsynced spool file into place and make the rename durable."""
    place(spool_file, target, what)
    fsync_dir(target.parent)


def atomic_write_bytes(target: Path, data: bytes, mode: int | None = None) -> None:
    """Write a whole small file atomically (config, reports, sidecars)."""
    with spool_writer(target.parent, str(target.name)) as (tmp, fh):
        fh.write(data)
        if mode is not None:
            os.chmod(tmp, mode)
    publish(tmp, target, str(target.name))
