"""New spool files made of some header bytes plus a byte range of an existing file.

A study edit rewrites every file of the study: a new header, then the pixel
data unchanged. Through the page cache the CPU copies each byte into new cache
pages, the kernel tracks and writes them back, and each fsync waits for its
share of that and a disk cache flush: on this project's test machines that
kernel work cost more than everything else in an edit (sys time 0.55 s of a
500-instance edit). Written with O_DIRECT from a reused, page-aligned buffer,
the bytes are read once into the buffer and go to the disk by DMA, and one
syncfs for the whole batch leaves only metadata and one flush.

Where the OS has no O_DIRECT or the spool's file system refuses it (tmpfs on
older kernels, some network file systems), the same bytes go through the page
cache with copy_file_range; without syncfs (not Linux) each file is fsynced
as it is written. Either way every file is durable once `sync` returns.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import mmap
import os
import queue
import shutil
import uuid
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no O_DIRECT either, so never needed there
    fcntl = None  # type: ignore[assignment]

from gearview.errors import InvalidDicomError
from gearview.store.atomic import (
    BATCH_PREFIX,
    can_sync_filesystem,
    os_error_to_store_error,
    spool_fd,
    spool_path,
    sync_filesystem,
)

log = logging.getLogger(__name__)
#: O_DIRECT needs buffer address, file offset and length aligned to the logical
#: block size; 4096 is a multiple of every block size in use.
ALIGN = 4096
#: One write for a typical instance; large multi-frames go out in these steps.
CHUNK = 1 << 20
COPY_CHUNK = 1 << 20
#: Batches at least this large are made durable with one syncfs, smaller ones file by file.
SYNCFS_MIN_FILES = 32
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}
_O_DIRECT = getattr(os, "O_DIRECT", 0)
_RWF_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
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


def direct_io_works(folder: Path) -> bool:
    """Whether files in `folder` accept an aligned O_DIRECT write (probed with a scratch file)."""
    if not _O_DIRECT or fcntl is None:
        return False
    probe = spool_path(folder)
    buf = mmap.mmap(-1, ALIGN)
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_DIRECT, 0o600)
        try:
            os.write(fd, buf)
        finally:
            os.close(fd)
    except OSError as exc:
        log.debug("O_DIRECT not usable in %s: %s", folder, exc)
        return False
    finally:
        buf.close()
        probe.unlink(missing_ok=True)
    return True


class SpoolCopier:
    """Writes spool files as `head` + a range of a source file, from several threads.

    The files go to a folder of their own under the spool, placed by the file
    system in an uncrowded block group (`spread_subdirectories`). They are
    durable only after `sync` (one syncfs for a batch of SYNCFS_MIN_FILES or
    more where the OS has it, else each file is fsynced as it is written).
    Each open source holds a pair of buffers; `close` frees them all and the
    folder.
    """

    def __init__(self, spool_dir: Path, files: int) -> None:
        self.spool_dir = spool_dir / f"{BATCH_PREFIX}{uuid.uuid4().hex}"
        try:
            self.spool_dir.mkdir(mode=0o700)
        except OSError as exc:
            raise os_error_to_store_error(exc, "the spool folder") from exc
        self.direct = direct_io_works(self.spool_dir)
        # syncfs also waits for everybody else's unwritten data on the file
        # system: worth it for a study, not for the few files of a tag edit.
        self.deferred_sync = files >= SYNCFS_MIN_FILES and can_sync_filesystem()
        self._names = itertools.count()
        self._idle: queue.SimpleQueue[tuple[mmap.mmap, mmap.mmap]] = queue.SimpleQueue()
        self._buffers: list[mmap.mmap] = []

    def open_source(self, path: Path | str) -> SourceFile:
        """Open a file to copy from; the caller closes it."""
        fd = os.open(path, _READ_FLAGS)
        try:
            if not self.direct:
                return SourceFile(fd, None, None)
            pair = self._borrow()
            return SourceFile(fd, pair, self._idle)
        except BaseException:
            os.close(fd)
            raise

    def write(self, head: bytes, source: SourceFile, offset: int, count: int, what: str) -> Path:
        """A new spool file holding `head` then bytes [offset, offset+count) of `source`."""
        path = self.spool_dir / f"{next(self._names)}.part"
        flags = _O_DIRECT if source.buffers else 0
        with spool_fd(path, what, flags, fsync=not self.deferred_sync) as fd:
            if source.buffers:
                _write_direct(fd, head, source, offset, count)
            else:
                write_all(fd, head)
                copy_fd_range(source.fd, fd, offset, count)
        return path

    def _borrow(self) -> tuple[mmap.mmap, mmap.mmap]:
        """An output buffer and a scratch buffer for direct reads (page-aligned for O_DIRECT)."""
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pair = (mmap.mmap(-1, CHUNK), mmap.mmap(-1, CHUNK + 2 * ALIGN))
            self._buffers.extend(pair)
            return pair

    def sync(self, what: str) -> None:
        """Make every file written so far durable."""
        if self.deferred_sync:
            sync_filesystem(self.spool_dir, what)

    def close(self) -> None:
        """Free the buffers and the batch's spool folder (every file in it was moved or dropped)."""
        shutil.rmtree(self.spool_dir, ignore_errors=True)
        for buf in self._buffers:
            # A write error's traceback may still hold a view of the buffer;
            # then the mapping goes when that does.
            with contextlib.suppress(BufferError):
                buf.close()
        self._buffers.clear()


def _write_direct(fd: int, head: bytes, source: SourceFile, offset: int, count: int) -> None:
    view = source.out
    fill = 0
    for piece in (memoryview(head)[i : i + CHUNK] for i in range(0, len(head), CHUNK)):
        if fill + len(piece) > CHUNK:
            write_all(fd, view[:fill])  # fill is a whole CHUNK here or 0
            fill = 0
        view[fill : fill + len(piece)] = piece
        fill += len(piece)
    done = 0
    while done < count:
        if fill == CHUNK:
            write_all(fd, view[:CHUNK])
            fill = 0
        got = source.read_into(view[fill : min(CHUNK, fill + count - done)], offset + done)
        if got == 0:
            raise InvalidDicomError(SHRANK)
        fill += got
        done += got
    whole = fill // ALIGN * ALIGN
    write_all(fd, view[:whole])
    if whole < fill:
        # The last partial block goes through the page cache: written
        # directly it would need padding and a truncate, and ext4 reads
        # the block back from disk to zero its end.
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_O_DIRECT)
        write_all(fd, view[whole:fill])


class SourceFile:
    """A file being copied: its bytes come from the page cache while it holds them, else around it.

    A study edited a second time was written by the first edit with O_DIRECT,
    so it is not cached: read through the cache it would fill 263 MB of fresh
    page cache per 500 instances, which costs more than the disk read. Cached
    bytes (a study just received) are taken from the cache (RWF_NOWAIT); a
    file that is not cached is read with O_DIRECT into an aligned scratch
    buffer, its first read covering the header and, for most instances, all
    the rest, so the copy finds the bytes already there.
    """

    def __init__(
        self,
        fd: int,
        buffers: tuple[mmap.mmap, mmap.mmap] | None,
        home: queue.SimpleQueue[tuple[mmap.mmap, mmap.mmap]] | None,
    ) -> None:
        self.fd = fd
        self.stat = os.fstat(fd)
        self.size = self.stat.st_size
        self.buffers = buffers
        self._home = home
        if buffers is not None:
            self.out = memoryview(buffers[0])
            self._scratch = memoryview(buffers[1])
        #: None: cached reads still work; -1: plain reads; else an O_DIRECT descriptor.
        self._direct_fd: int | None = None if buffers is not None and _RWF_NOWAIT else -1
        self._held_start = 0  # scratch[:held] holds bytes [held_start, held_start + held)
        self._held = 0

    def head(self, size: int) -> bytes:
        """The file's first `size` bytes (fewer when the file is shorter)."""
        want = min(size, self.size)
        if self._direct_fd is None:
            buf = bytearray(want)
            if self._cached_read(memoryview(buf), 0) == want:
                return bytes(buf)
        if self._direct_fd is None:
            self._direct_fd = self._open_direct()
        if self._direct_fd < 0:
            return read_at(self.fd, want, 0)
        if self._held_start != 0 or self._held < want:
            self._fill_scratch(0, len(self._scratch))
        return bytes(self._scratch[: min(want, self._held)])

    def read_into(self, target: memoryview, position: int) -> int:
        """Read bytes at `position` into `target`; how many (0 at the end of the file)."""
        if not self._held_start <= position < self._held_start + self._held:
            if self._direct_fd is None:
                got = self._cached_read(target, position)
                if got >= 0:
                    return got
                self._direct_fd = self._open_direct()
            if self._direct_fd < 0:
                return os.preadv(self.fd, [target], position)
            self._fill_scratch(position, len(target))
        skip = position - self._held_start
        usable = max(0, min(self._held - skip, len(target)))
        target[:usable] = self._scratch[skip : skip + usable]
        return usable

    def _cached_read(self, target: memoryview, position: int) -> int:
        """Bytes read from the page cache alone; -1 when the first of them is not there."""
        try:
            return os.preadv(self.fd, [target], position, _RWF_NOWAIT)
        except BlockingIOError:
            return -1
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            return -1

    def _fill_scratch(self, position: int, count: int) -> None:
        """Read the aligned blocks around [position, position + count) into the scratch buffer."""
        start = position // ALIGN * ALIGN
        length = min(len(self._scratch), -(-(position - start + count) // ALIGN) * ALIGN)
        self._held_start = start
        self._held = 0
        self._held = os.preadv(self._direct_fd, [self._scratch[:length]], start)

    def _open_direct(self) -> int:
        try:
            return os.open(f"/proc/self/fd/{self.fd}", os.O_RDONLY | _O_DIRECT | os.O_CLOEXEC)
        except OSError as exc:
            log.debug("direct reads unavailable: %s", exc)
            return -1

    def close(self) -> None:
        if self._direct_fd is not None and self._direct_fd >= 0:
            os.close(self._direct_fd)
        os.close(self.fd)
        if self.buffers is not None and self._home is not None:
            self.out.release()
            self._scratch.release()
            self._home.put(self.buffers)
