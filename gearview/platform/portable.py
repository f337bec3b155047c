"""File I/O with calls every OS has: the implementation Windows and macOS run.

New files are written through the page cache and fsynced one by one, spool
files are created with a name, and folders keep whatever flags they have.
`FileIO` is also the interface: `gearview.platform.linux.LinuxIO` overrides
what Linux does faster and inherits the rest.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Protocol

from gearview.errors import InvalidDicomError

COPY_CHUNK = 1 << 20
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
SHRANK = "an instance file shrank while it was being rewritten"


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until every byte is written (a short write is legal for regular files)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_at(fd: int, size: int, offset: int) -> bytes:
    """os.pread where the OS has it (not Windows: there, seek and read on our own descriptor)."""
    if hasattr(os, "pread"):
        return os.pread(fd, size, offset)
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, size)


def copy_fd_range(src: int, dst: int, offset: int, count: int) -> None:
    """Append bytes [offset, offset+count) of `src` at `dst`'s position, kernel-side if possible."""
    copied = 0
    kernel_copy = getattr(os, "copy_file_range", None)
    if kernel_copy is not None:
        try:
            while copied < count:
                done = kernel_copy(src, dst, count - copied, offset + copied)
                if done == 0:
                    raise InvalidDicomError(SHRANK)
                copied += done
        except OSError as exc:
            if copied or exc.errno not in _NO_COPY_RANGE:
                raise
    while copied < count:
        chunk = read_at(src, min(COPY_CHUNK, count - copied), offset + copied)
        if not chunk:
            raise InvalidDicomError(SHRANK)
        write_all(dst, chunk)
        copied += len(chunk)


class SourceFile:
    """A file whose bytes go into new files (the caller closes it)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.stat = os.fstat(fd)
        self.size = self.stat.st_size

    def head(self, size: int) -> bytes:
        """The file's first `size` bytes (fewer when the file is shorter)."""
        return read_at(self.fd, min(size, self.size), 0)

    def close(self) -> None:
        os.close(self.fd)


class Copier:
    """Writes new files as some header bytes plus a byte range of a source file.

    Made for one folder (`FileIO.copier`), used from several threads.
    """

    def open_source(self, path: Path | str) -> SourceFile:
        fd = os.open(path, _READ_FLAGS)
        try:
            return self._source(fd)
        except BaseException:
            os.close(fd)
            raise

    def _source(self, fd: int) -> SourceFile:
        return SourceFile(fd)

    def copy(self, fd: int, head: bytes, source: SourceFile, offset: int, count: int) -> None:
        """Write `head` then bytes [offset, offset+count) of `source` into the new file `fd`."""
        write_all(fd, head)
        copy_fd_range(source.fd, fd, offset, count)

    def close(self) -> None:
        """Free what the copier holds (its files are the caller's)."""


class ReservedFile(Protocol):
    """A spool file opened ahead, without a name: it vanishes when closed unless linked."""

    fd: int

    @property
    def path(self) -> str:
        """A path that opens the file while `fd` is open."""

    def link(self, path: Path) -> None:
        """Give the file the name `path`."""


class SpoolReserve(Protocol):
    """Keeps a few `ReservedFile`s open and ready."""

    def take(self) -> ReservedFile | None:
        """A ready file, or None when none is ready yet."""

    def stop(self) -> None:
        """Stop opening files and close the ready ones."""


class FileIO:
    """How the cache gets bytes durably onto the disk: the portable way.

    Chosen once when a cache opens (`gearview.platform.choose_file_io`).
    """

    name = "portable"

    @property
    def can_sync_filesystem(self) -> bool:
        """Whether `sync_filesystem` exists; else each new file is fsynced as it is written."""
        return False

    def sync_filesystem(self, folder: Path) -> None:
        """Make every file written on `folder`'s file system durable in one call (OSError)."""
        raise OSError(errno.ENOSYS, "no call makes a whole file system durable here")

    def copier(self, folder: Path) -> Copier:
        """A `Copier` for new files in `folder`."""
        return Copier()

    def spool_reserve(self, folder: Path) -> SpoolReserve | None:
        """Spool files opened ahead for received instances; None: each is created when needed."""
        return None

    def spread_subfolders(self, folder: Path) -> bool:
        """Ask the file system to put `folder`'s new subfolders in uncrowded places (False: no)."""
        return False
