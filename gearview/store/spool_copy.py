"""A batch of new spool files, each some header bytes plus a byte range of an existing file.

A study edit rewrites every file of the study: a new header, then the pixel
data unchanged. The cache's `FileIO` does the copying (with O_DIRECT on
Linux, through the page cache elsewhere) and decides whether one call can
make the whole batch durable (syncfs) or each file is fsynced as it is
written. Either way every file is durable once `SpoolCopier.sync` returns.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from pathlib import Path

from gearview.platform import FileIO
from gearview.platform.portable import SourceFile
from gearview.store.atomic import BATCH_PREFIX, os_error_to_store_error, spool_fd

#: Batches at least this large are made durable with one syncfs, smaller ones file by file.
SYNCFS_MIN_FILES = 32


class SpoolCopier:
    """Writes spool files as `head` + a range of a source file, from several threads.

    The files go to a folder of their own under the spool (placed in an
    uncrowded block group where the spool asked for that,
    `FileIO.spread_subfolders`). They are durable only after `sync`; `close`
    frees the copier's buffers and the folder.
    """

    def __init__(self, io: FileIO, spool_dir: Path, files: int) -> None:
        self.spool_dir = spool_dir / f"{BATCH_PREFIX}{uuid.uuid4().hex}"
        try:
            self.spool_dir.mkdir(mode=0o700)
        except OSError as exc:
            raise os_error_to_store_error(exc, "the spool folder") from exc
        self._io = io
        self._copier = io.copier(self.spool_dir)
        # syncfs also waits for everybody else's unwritten data on the file
        # system: worth it for a study, not for the few files of a tag edit.
        self.deferred_sync = files >= SYNCFS_MIN_FILES and io.can_sync_filesystem
        self._names = itertools.count()

    def open_source(self, path: Path | str) -> SourceFile:
        """Open a file to copy from; the caller closes it."""
        return self._copier.open_source(path)

    def write(self, head: bytes, source: SourceFile, offset: int, count: int, what: str) -> Path:
        """A new spool file holding `head` then bytes [offset, offset+count) of `source`."""
        path = self.spool_dir / f"{next(self._names)}.part"
        with spool_fd(path, what, fsync=not self.deferred_sync) as fd:
            self._copier.copy(fd, head, source, offset, count)
        return path

    def sync(self, what: str) -> None:
        """Make every file written so far durable."""
        if not self.deferred_sync:
            return
        try:
            self._io.sync_filesystem(self.spool_dir)
        except OSError as exc:
            raise os_error_to_store_error(exc, what) from exc

    def close(self) -> None:
        """Free the buffers and the batch's spool folder (every file in it was moved or dropped)."""
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        self._copier.close()
