"""Spool files built from a header plus a range of another file (the edit's write path).

The same bytes with each file I/O: the Linux one (O_DIRECT from aligned
buffers, direct or cached reads, one syncfs) and the portable one (buffered
copies, an fsync per file).
"""

from __future__ import annotations

import mmap
import os
import sys
from pathlib import Path

import pytest

from gearview.errors import InvalidDicomError
from gearview.platform import FileIO, direct, portable
from gearview.platform.direct import ALIGN
from gearview.store import spool_copy
from gearview.store.spool_copy import SpoolCopier

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux file I/O")


def _file_io(o_direct: bool) -> FileIO:
    if not o_direct:
        return FileIO()
    if not sys.platform.startswith("linux"):
        pytest.skip("O_DIRECT copies are Linux file I/O")
    from gearview.platform.linux import LinuxIO

    return LinuxIO()


def _direct_copier(spool: Path, files: int = spool_copy.SYNCFS_MIN_FILES) -> SpoolCopier:
    """A copier with O_DIRECT copies and, for a batch this large, one syncfs."""
    copier = SpoolCopier(_file_io(True), spool, files)
    if not isinstance(copier._copier, direct.DirectCopier):
        copier.close()
        pytest.skip(f"{spool} refuses O_DIRECT")
    return copier


def _copy(spool: Path, source: Path, head: bytes, offset: int, count: int, o_direct: bool) -> bytes:
    copier = _direct_copier(spool) if o_direct else SpoolCopier(FileIO(), spool, 1)
    assert copier.deferred_sync == (o_direct and copier._io.can_sync_filesystem)
    try:
        opened = copier.open_source(source)
        try:
            path = copier.write(head, opened, offset, count, "a test file")
        finally:
            opened.close()
        copier.sync("a test file")
        assert path.parent.parent == spool
        return path.read_bytes()
    finally:
        copier.close()


@pytest.mark.parametrize(
    ("head_size", "offset", "count"),
    [
        (300, 0, 0),  # header only
        (300, 17, 100),  # under one block
        (300, 5, ALIGN - 300),  # exactly one block
        (1301, 1100, 3 * ALIGN + 1),  # one byte into the last block
        (7000, 3, 40_000),  # several buffers' worth
        (20_000, 9, 1000),  # header longer than a buffer
    ],
)
def test_direct_and_page_cache_writes_are_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head_size: int, offset: int, count: int
) -> None:
    monkeypatch.setattr(direct, "CHUNK", 4 * ALIGN)  # small buffers: many chunk edges
    source = tmp_path / "source.dcm"
    source.write_bytes(os.urandom(offset + count + 50))
    head = os.urandom(head_size)
    expected = head + source.read_bytes()[offset : offset + count]
    spool = tmp_path / "spool"
    spool.mkdir()
    assert _copy(spool, source, head, offset, count, o_direct=False) == expected
    assert _copy(spool, source, head, offset, count, o_direct=True) == expected
    assert not any(spool.iterdir()), "the batch folder outlived the copier"


def _uncached_file(path: Path, size: int) -> bytes:
    """Random bytes written to `path` around the page cache (O_DIRECT), as an edit writes them.

    Only the last partial block may pass through the cache (the truncate);
    a cache drop alone is a hint a busy kernel may ignore.
    """
    data = os.urandom(size)
    padded = -(-size // ALIGN) * ALIGN
    buf = mmap.mmap(-1, padded)
    try:
        buf[:size] = data
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
        except OSError:
            pytest.skip(f"{path.parent} refuses O_DIRECT")
        try:
            os.write(fd, buf)
            os.ftruncate(fd, size)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    finally:
        buf.close()
    return data


def _cache_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every page-cache read miss, as for a file an edit wrote with O_DIRECT.

    Whether the kernel still holds a block of a fresh test file is up to the
    kernel (a busy machine keeps some), so the read path is tested on a
    certain miss; the bytes still come from the real file.
    """
    monkeypatch.setattr(direct.DirectSource, "_cached_read", lambda self, target, position: -1)


def test_source_not_in_the_page_cache_is_read_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second edit reads files the first wrote around the cache: same bytes, no cache filled."""
    monkeypatch.setattr(direct, "CHUNK", 4 * ALIGN)
    _cache_misses(monkeypatch)
    source = tmp_path / "cold.dcm"
    data = _uncached_file(source, 9 * ALIGN + 123)
    reads = []
    real_open = direct.DirectSource._open_direct

    def counting_open(self) -> int:
        reads.append(self.fd)
        return real_open(self)

    monkeypatch.setattr(direct.DirectSource, "_open_direct", counting_open)
    spool = tmp_path / "spool"
    spool.mkdir()
    head = os.urandom(777)
    assert _copy(spool, source, head, 1001, len(data) - 1001, o_direct=True) == head + data[1001:]
    assert reads, "the uncached source was read through the page cache"


def test_header_of_an_uncached_file_comes_with_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One direct read serves the header and the copy of a typical instance."""
    _cache_misses(monkeypatch)
    source = tmp_path / "cold.dcm"
    data = _uncached_file(source, 3 * ALIGN + 99)
    fills = []
    real_fill = direct.DirectSource._fill_scratch

    def counting_fill(self, position: int, count: int) -> None:
        fills.append(position)
        real_fill(self, position, count)

    monkeypatch.setattr(direct.DirectSource, "_fill_scratch", counting_fill)
    spool = tmp_path / "spool"
    spool.mkdir()
    copier = _direct_copier(spool, 1)
    try:
        opened = copier.open_source(source)
        try:
            assert opened.head(5000) == data[:5000]
            assert opened.head(1 << 20) == data  # never more than the file
            path = copier.write(b"HEAD", opened, 3000, len(data) - 3000, "a test file")
        finally:
            opened.close()
        assert path.read_bytes() == b"HEAD" + data[3000:]
        assert fills == [0], "the header or the copy read the disk again"
    finally:
        copier.close()


@pytest.mark.parametrize("o_direct", [False, True])
def test_source_shorter_than_its_header_says_leaves_no_file(tmp_path: Path, o_direct: bool) -> None:
    source = tmp_path / "short.dcm"
    source.write_bytes(os.urandom(5000))
    spool = tmp_path / "spool"
    spool.mkdir()
    with pytest.raises(InvalidDicomError, match="shrank"):
        _copy(spool, source, b"h" * 200, 100, 9000, o_direct=o_direct)
    assert not any(spool.iterdir())


def _inode_flags(folder: Path) -> str:
    import shutil
    import subprocess

    if shutil.which("lsattr") is None:
        pytest.skip("no lsattr")
    done = subprocess.run(["lsattr", "-d", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("this file system has no ext2/3/4 inode flags")
    return done.stdout.split()[0]


@linux_only
def test_spread_subfolders_sets_the_topdir_flag(tmp_path: Path) -> None:
    """The `chattr +T` flag is what puts each batch's files in an uncrowded block group."""
    from gearview.platform.linux import LinuxIO

    folder = tmp_path / "spool"
    folder.mkdir()
    if not LinuxIO().spread_subfolders(folder):
        pytest.skip("this file system has no ext2/3/4 inode flags")
    assert "T" in _inode_flags(folder)
    assert LinuxIO().spread_subfolders(folder)  # a second call finds the flag set and keeps it
    assert not FileIO().spread_subfolders(folder)


@linux_only
def test_the_spool_folder_gets_no_flag_unless_asked(home, monkeypatch: pytest.MonkeyPatch) -> None:
    """Flags on the user's folders are opt-in: `storage.set_spool_topdir_flag`."""
    from gearview.config import load_config, save_config
    from gearview.store import Cache

    monkeypatch.setenv("GEARVIEW_IO", "linux")
    cache = Cache(home)
    cache.close()
    if "T" in _inode_flags(cache.spool_dir):
        pytest.fail("the spool folder got the +T flag by default")
    config = load_config(home)
    config.storage.set_spool_topdir_flag = True
    save_config(home, config)
    cache = Cache(home)
    cache.close()
    assert "T" in _inode_flags(cache.spool_dir)


def test_copy_without_pread_or_copy_file_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Windows path: neither os.pread nor os.copy_file_range exists there."""
    monkeypatch.delattr(os, "pread")
    monkeypatch.delattr(os, "copy_file_range")
    source = tmp_path / "source.dcm"
    source.write_bytes(os.urandom(3 * portable.COPY_CHUNK + 7))
    spool = tmp_path / "spool"
    spool.mkdir()
    data = source.read_bytes()
    copier = SpoolCopier(FileIO(), spool, 1)
    try:
        opened = copier.open_source(source)
        try:
            assert opened.head(100) == data[:100]
        finally:
            opened.close()
    finally:
        copier.close()
    assert _copy(spool, source, b"H" * 10, 5, len(data) - 5, o_direct=False) == b"H" * 10 + data[5:]


@pytest.mark.parametrize("o_direct", [False, True])
def test_one_syncfs_only_for_a_batch_worth_it(tmp_path: Path, o_direct: bool) -> None:
    """syncfs waits for all unwritten data on the file system: a tag edit of one file fsyncs it."""
    io = _file_io(o_direct)
    small = SpoolCopier(io, tmp_path, 1)
    study = SpoolCopier(io, tmp_path, spool_copy.SYNCFS_MIN_FILES)
    try:
        assert not small.deferred_sync
        assert study.deferred_sync == io.can_sync_filesystem == o_direct
    finally:
        small.close()
        study.close()
