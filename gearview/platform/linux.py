"""File I/O the Linux way: one syncfs per batch, O_DIRECT copies, unnamed spool files.

Each call here has a portable twin in `portable.FileIO`, used where the
kernel or the file system refuses it (no O_DIRECT on some tmpfs and network
file systems, no O_TMPFILE on others).
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import queue
import struct
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from gearview.platform.direct import DirectCopier, direct_io_works
from gearview.platform.portable import Copier, FileIO

log = logging.getLogger(__name__)
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
#: How many unnamed spool files the reserve keeps open and ready.
RESERVE_DEPTH = 4
_RESERVE_POLL = 0.5
#: linux/fs.h: FS_IOC_GETFLAGS = _IOR('f', 1, long), FS_IOC_SETFLAGS =
#: _IOW('f', 2, long) (the kernel reads an int), and FS_TOPDIR_FL ("top of
#: directory hierarchies", the `chattr +T` flag).
_FS_IOC_GETFLAGS = 0x80006601 | struct.calcsize("l") << 16
_FS_IOC_SETFLAGS = 0x40006602 | struct.calcsize("l") << 16
_FS_TOPDIR_FL = 0x00020000


def _find_syncfs() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


class UnnamedFile:
    """An O_TMPFILE file: it vanishes when closed unless `link` gave it a name first."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @property
    def path(self) -> str:
        """A path that opens this file while its descriptor is open (for readers that want one)."""
        return f"/proc/self/fd/{self.fd}"

    def link(self, path: Path) -> None:
        """Give the file a name (linkat with AT_SYMLINK_FOLLOW on its /proc entry)."""
        dir_fd = os.open(path.parent, _DIRECTORY)
        try:
            os.link(self.path, path.name, dst_dir_fd=dir_fd, follow_symlinks=True)
        finally:
            os.close(dir_fd)


def open_unnamed(folder: Path) -> UnnamedFile:
    """An unnamed file on `folder`'s file system; OSError where unsupported."""
    return UnnamedFile(os.open(folder, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600))


def probe_unnamed(folder: Path) -> None:
    """Make, name and remove one unnamed file: raises OSError where any step is unsupported."""
    unnamed = open_unnamed(folder)
    probe = folder / f"{uuid.uuid4().hex}.part"
    try:
        unnamed.link(probe)
        probe.unlink()
    finally:
        os.close(unnamed.fd)


class UnnamedReserve:
    """Unnamed spool files (O_TMPFILE) opened ahead on a daemon thread.

    Creating a file costs an inode allocation, which ext4 makes slow (~0.4 ms
    in the receive benchmark) right after many files were deleted; the filler
    pays it while associations wait for data. The files have no name until the
    receive path links a fully written and fsynced one into the spool, so a
    crash or a refused instance leaves nothing behind and nobody sees them.
    Durability is unchanged: written, fsynced, named, renamed into place, its
    directory fsynced, then indexed.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._ready: queue.Queue[UnnamedFile] = queue.Queue(RESERVE_DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._fill, daemon=True, name="gearview-spool-reserve"
        )
        self._thread.start()

    def _fill(self) -> None:
        while not self._stop.is_set():
            try:
                unnamed = open_unnamed(self.folder)
            except OSError as exc:
                log.debug("spool reserve paused: %s", exc)
                self._stop.wait(_RESERVE_POLL)
                continue
            while not self._stop.is_set():
                try:
                    self._ready.put(unnamed, timeout=_RESERVE_POLL)
                    break
                except queue.Full:
                    continue
            else:
                os.close(unnamed.fd)

    def take(self) -> UnnamedFile | None:
        try:
            return self._ready.get_nowait()
        except queue.Empty:
            return None

    def stop(self) -> None:
        """End the filler and close the files it left (they vanish: they have no name)."""
        self._stop.set()
        self._thread.join()
        while (unnamed := self.take()) is not None:
            os.close(unnamed.fd)


class LinuxIO(FileIO):
    """syncfs(2) through ctypes, O_DIRECT copies, O_TMPFILE spool files, ext4 inode flags."""

    name = "linux"

    def __init__(self) -> None:
        self._syncfs = _find_syncfs()
        self._direct_devices: set[int] = set()  # st_dev of file systems that take O_DIRECT
        self._lock = threading.Lock()

    @property
    def can_sync_filesystem(self) -> bool:
        return self._syncfs is not None

    def sync_filesystem(self, folder: Path) -> None:
        """syncfs(2): one call instead of an fsync per file for a batch of new files.

        Each fsync waits for its own disk cache flush, and for 500 edited
        instances those waits cost more than writing the pixel data (bench_edit:
        0.31 s -> 0.22 s). Since Linux 5.8 it reports write-back errors of the
        file system. It also waits for other programs' unwritten data on that
        file system (an ISO being written there, say), which can make a small
        edit slow but never unsafe.
        """
        if self._syncfs is None:
            return super().sync_filesystem(folder)
        fd = os.open(folder, _DIRECTORY)
        try:
            if self._syncfs(fd) != 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code))
        finally:
            os.close(fd)

    def copier(self, folder: Path) -> Copier:
        """O_DIRECT copies where `folder`'s file system takes them (probed until it does)."""
        device = os.stat(folder).st_dev
        with self._lock:
            if device not in self._direct_devices and direct_io_works(folder):
                self._direct_devices.add(device)
        return DirectCopier() if device in self._direct_devices else super().copier(folder)

    def spool_reserve(self, folder: Path) -> UnnamedReserve | None:
        try:
            probe_unnamed(folder)
        except OSError as exc:
            log.info("no spool reserve on this file system: %s", exc)
            return None
        return UnnamedReserve(folder)

    def spread_subfolders(self, folder: Path) -> bool:
        """Set ext2/3/4's `+T` flag: new subfolders land in uncrowded block groups.

        Files are created in their directory's block group, and ext4 without a
        journal skips every inode of that group deleted in the last minutes:
        after a study was deleted nearby, creating 500 files took 0.1 s longer.
        False on other file systems.
        """
        try:
            fd = os.open(folder, _DIRECTORY)
        except OSError:
            return False
        try:
            flags = bytearray(8)
            fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags)
            current = int.from_bytes(flags[:4], sys.byteorder)
            if not current & _FS_TOPDIR_FL:
                flags[:4] = (current | _FS_TOPDIR_FL).to_bytes(4, sys.byteorder)
                fcntl.ioctl(fd, _FS_IOC_SETFLAGS, flags)
            return True
        except OSError:
            return False
        finally:
            os.close(fd)
