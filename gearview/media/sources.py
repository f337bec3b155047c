"""Readers for patient media behind one interface: a folder (or mounted drive),
an ISO image (pycdlib, never mounted) and a zip archive.

A source lists its members as `Entry` objects and streams one member's bytes
into a file we opened; nothing ever builds a host path from a name stored in
the medium, and a folder source never opens anything outside its root. Members
that are unsafe (symlinks out, zip slip names, bombs, encrypted members, absurd
sizes) come out of `scan()` as `Refusal`s carrying the reason for the report.
"""

from __future__ import annotations

import os
import stat
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from gearview.errors import GearviewError
from gearview.jobs import CancelToken

#: One member larger than this is refused as an absurd size (a 200 MB
#: multi-frame is normal, a 4 GiB claim on a CD is not).
MAX_MEMBER_SIZE = 4 << 30
#: Zip: a member inflating more than this ratio (and past the floor) is a bomb.
MAX_ZIP_RATIO = 200
ZIP_RATIO_FLOOR = 16 << 20
#: Zip: total declared uncompressed size and member count limits.
MAX_ZIP_TOTAL = 32 << 30
ZIP_TOTAL_FLOOR = 1 << 30
MAX_ZIP_MEMBERS = 200_000
#: Folders: directories deeper than this are not descended into.
MAX_DEPTH = 64
COPY_CHUNK = 1 << 20


class MediaError(GearviewError):
    """The medium as a whole cannot be read (garbage ISO, corrupt zip, missing path)."""

    hint = "check that the disc, image or archive is complete and readable"


class MemberError(GearviewError):
    """One member could not be read; the scan reports it and goes on."""


@dataclass(frozen=True)
class Entry:
    """One regular file in a medium: its name inside the medium, size and reader handle."""

    name: str
    size: int
    key: object


@dataclass(frozen=True)
class Refusal:
    """A member refused for safety before any of its bytes were read."""

    name: str
    reason: str


ScanItem = Entry | Refusal


class MediaSource(ABC):
    """A medium we read files from."""

    kind = "medium"

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def label(self) -> str:
        return f"{self.kind} {self.path}"

    @abstractmethod
    def scan(self, token: CancelToken | None = None) -> Iterator[ScanItem]:
        """Every member, in a stable order; directories are walked, not yielded."""

    @abstractmethod
    def copy_to(self, entry: Entry, out: BinaryIO, limit: int) -> int:
        """Stream a member into `out` (at most `limit` bytes, else MemberError)."""

    def local_path(self, entry: Entry) -> Path | None:
        """A host path that may be read directly (folders only), or None."""
        return None

    def close(self) -> None:  # noqa: B027 - folders hold no handle; others override
        """Release the medium's file handles."""

    def __enter__(self) -> MediaSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check(token: CancelToken | None) -> None:
    if token is not None:
        token.check()


def _copy_limited(read: Callable[[int], bytes], out: BinaryIO, limit: int) -> int:
    total = 0
    while chunk := read(COPY_CHUNK):
        total += len(chunk)
        if total > limit:
            raise MemberError(f"larger than its declared or allowed size ({limit} bytes)")
        out.write(chunk)
    return total


class FolderSource(MediaSource):
    """A folder, a mounted CD/DVD or a USB stick: walked without following links out."""

    kind = "folder"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self.root = Path(os.path.realpath(path))
            if not self.root.is_dir():
                raise MediaError(f"not a folder: {path}")
        except OSError as exc:
            raise MediaError(f"cannot open {path}: {exc.strerror}") from None

    def _inside(self, real: str) -> bool:
        root = str(self.root)
        return real == root or real.startswith(root.rstrip(os.sep) + os.sep)

    def _relname(self, path: str) -> str:
        return PurePosixPath(*Path(os.path.relpath(path, self.root)).parts).as_posix()

    def scan(self, token: CancelToken | None = None) -> Iterator[ScanItem]:
        stack: list[tuple[str, int]] = [(str(self.root), 0)]
        while stack:
            _check(token)
            folder, depth = stack.pop()
            try:
                with os.scandir(folder) as it:
                    children = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                yield Refusal(self._relname(folder) + "/", f"cannot list folder: {exc.strerror}")
                continue
            subfolders = []
            for child in children:
                item = self._classify(child, depth)
                if item is None:
                    subfolders.append((child.path, depth + 1))
                else:
                    yield item
            stack.extend(reversed(subfolders))

    def _classify(self, child: os.DirEntry[str], depth: int) -> ScanItem | None:
        """An item to yield, or None for a subfolder to descend."""
        name = self._relname(child.path)
        try:
            if child.is_symlink():
                return self._symlink(child.path, name)
            st = child.stat(follow_symlinks=False)
        except OSError as exc:
            return Refusal(name, f"cannot read: {exc.strerror}")
        if stat.S_ISDIR(st.st_mode):
            if depth + 1 > MAX_DEPTH:
                return Refusal(
                    name + "/", f"folder nested deeper than {MAX_DEPTH} levels: not read"
                )
            return None
        if not stat.S_ISREG(st.st_mode):
            return Refusal(name, "not a regular file (device, pipe or socket)")
        return self._sized(name, st.st_size, child.path)

    def _symlink(self, path: str, name: str) -> Refusal:
        """Links are never followed; one to a file inside is read at its real place."""
        real = os.path.realpath(path)
        if not self._inside(real):
            return Refusal(name, "symbolic link pointing outside the medium: not followed")
        if not os.path.isfile(real):
            return Refusal(name, "symbolic link to a folder or nothing: not followed")
        return Refusal(name, f"symbolic link to {self._relname(real)} (read there, not twice)")

    @staticmethod
    def _sized(name: str, size: int, path: str) -> ScanItem:
        if size > MAX_MEMBER_SIZE:
            return Refusal(name, f"absurd size ({size} bytes): not read")
        return Entry(name, size, path)

    def local_path(self, entry: Entry) -> Path | None:
        real = os.path.realpath(str(entry.key))
        if not self._inside(real):  # the tree changed under us since the scan
            raise MemberError("now points outside the medium: not read")
        return Path(real)

    def copy_to(self, entry: Entry, out: BinaryIO, limit: int) -> int:
        path = self.local_path(entry)
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        try:
            fd = os.open(str(path), flags)
        except OSError as exc:
            raise MemberError(f"cannot read: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            return _copy_limited(fh.read, out, limit)


class IsoSource(MediaSource):
    """An ISO 9660 image read with pycdlib: Rock Ridge, Joliet or plain names."""

    kind = "ISO image"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.iso = pycdlib.PyCdlib()
        try:
            self._fh = open(path, "rb")
        except OSError as exc:
            raise MediaError(f"cannot open {path}: {exc.strerror}") from None
        try:
            self.iso.open_fp(self._fh)
        except (PyCdlibException, OSError, ValueError, IndexError, KeyError) as exc:
            self._fh.close()
            raise MediaError(f"not a readable ISO image ({exc})") from None
        self._image_size = os.fstat(self._fh.fileno()).st_size
        #: Files may share extents; past this total they are an "ISO bomb".
        self._total_limit = 2 * self._image_size + (64 << 20)
        self._total = 0
        if self.iso.has_rock_ridge():
            self.facade = "rr_path"
        elif self.iso.has_joliet():
            self.facade = "joliet_path"
        else:
            self.facade = "iso_path"

    def _name(self, record: object) -> str:
        if self.facade == "rr_path":
            return record.rock_ridge.name().decode("utf-8", "replace")  # type: ignore[attr-defined]
        ident = record.file_identifier()  # type: ignore[attr-defined]
        text = ident.decode("utf-16-be" if self.facade == "joliet_path" else "latin-1", "replace")
        if self.facade == "iso_path":
            text = text.split(";")[0].rstrip(".")
        return text

    def scan(self, token: CancelToken | None = None) -> Iterator[ScanItem]:
        stack = [("/", "", 0)]
        while stack:
            _check(token)
            iso_dir, display, depth = stack.pop()
            try:
                children = list(self.iso.list_children(**{self.facade: iso_dir}))
            except (PyCdlibException, OSError, ValueError, IndexError) as exc:
                yield Refusal(display + "/", f"unreadable directory in the image ({exc})")
                continue
            subdirs = []
            for record in children:
                if record is None or record.is_dot() or record.is_dotdot():
                    continue
                name = self._name(record)
                path = (
                    f"{iso_dir.rstrip('/')}/{name}"
                    if self.facade != "iso_path"
                    else f"{iso_dir.rstrip('/')}/{record.file_identifier().decode('latin-1')}"
                )
                shown = f"{display}/{name}" if display else name
                if (
                    self.facade == "rr_path"
                    and record.rock_ridge is not None
                    and record.rock_ridge.is_symlink()
                ):
                    yield Refusal(shown, "symbolic link on the disc (Rock Ridge): not followed")
                elif record.is_dir():
                    if depth + 1 > MAX_DEPTH:
                        yield Refusal(
                            shown + "/", f"folder nested deeper than {MAX_DEPTH} levels: not read"
                        )
                    else:
                        subdirs.append((path, shown, depth + 1))
                else:
                    yield self._entry(shown, path, record)
            stack.extend(reversed(subdirs))

    def _entry(self, shown: str, path: str, record: object) -> ScanItem:
        size = record.get_data_length()  # type: ignore[attr-defined]
        if size > MAX_MEMBER_SIZE:
            return Refusal(shown, f"absurd size ({size} bytes): not read")
        extent = record.extent_location() * self.iso.logical_block_size  # type: ignore[attr-defined]
        if size and extent + size > self._image_size:
            return Refusal(shown, "the image ends before this file does (truncated ISO)")
        if self._total + size > self._total_limit:
            return Refusal(
                shown, "files overlap far beyond the image size: rest refused (ISO bomb)"
            )
        self._total += size
        return Entry(shown, size, path)

    def copy_to(self, entry: Entry, out: BinaryIO, limit: int) -> int:
        counter = _CountingWriter(out, limit)
        try:
            self.iso.get_file_from_iso_fp(counter, **{self.facade: entry.key})
        except (PyCdlibException, OSError, ValueError) as exc:
            raise MemberError(f"cannot read from the image ({exc})") from None
        if counter.total != entry.size:
            raise MemberError("truncated: the image ends before this file does")
        return counter.total

    def close(self) -> None:
        try:
            self.iso.close()
        except PyCdlibException:
            pass
        self._fh.close()


class _CountingWriter:
    """A file-like that refuses to grow past a limit."""

    def __init__(self, out: BinaryIO, limit: int) -> None:
        self.out = out
        self.limit = limit
        self.total = 0

    def write(self, data: bytes) -> int:
        self.total += len(data)
        if self.total > self.limit:
            raise MemberError(f"larger than its declared or allowed size ({self.limit} bytes)")
        return self.out.write(data)


def unsafe_member_name(name: str) -> str | None:
    """Why a name stored in an archive is unsafe (zip slip), or None."""
    if "\\" in name:
        return "name uses backslashes (possible path traversal)"
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path in the archive"
    if any(part == ".." for part in name.split("/")):
        return "name climbs out with '..' (zip slip)"
    if "\x00" in name:
        return "name contains a NUL byte"
    return None


class ZipSource(MediaSource):
    """A zip archive: members are streamed with size, ratio and count limits."""

    kind = "zip archive"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self.zip = zipfile.ZipFile(path)
            archive_size = path.stat().st_size
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise MediaError(f"not a readable zip archive ({exc})") from None
        #: Many members just under the per-member ratio still make a bomb together.
        self.total_limit = min(MAX_ZIP_TOTAL, max(ZIP_TOTAL_FLOOR, MAX_ZIP_RATIO * archive_size))

    def scan(self, token: CancelToken | None = None) -> Iterator[ScanItem]:
        total = 0
        for count, info in enumerate(self.zip.infolist()):
            if count % 256 == 0:
                _check(token)
            if info.is_dir():
                continue
            if count >= MAX_ZIP_MEMBERS:
                yield Refusal(
                    info.filename, f"archive has more than {MAX_ZIP_MEMBERS} members: not read"
                )
                continue
            reason = self._refusal(info, total)
            if reason:
                yield Refusal(info.filename, reason)
                continue
            total += info.file_size
            yield Entry(info.filename, info.file_size, info)

    def _refusal(self, info: zipfile.ZipInfo, total: int) -> str | None:
        unsafe = unsafe_member_name(info.filename)
        if unsafe:
            return unsafe
        if stat.S_ISLNK(info.external_attr >> 16):
            return "symbolic link in the archive: not followed"
        if info.flag_bits & 0x1:
            return "encrypted (password-protected) member: cannot be read"
        if info.file_size > MAX_MEMBER_SIZE:
            return f"absurd size ({info.file_size} bytes): not read"
        if info.file_size > ZIP_RATIO_FLOOR and info.file_size > MAX_ZIP_RATIO * max(
            info.compress_size, 1
        ):
            return (
                f"compression ratio over {MAX_ZIP_RATIO}:1 "
                f"({info.compress_size} -> {info.file_size} bytes): zip bomb refused"
            )
        if total + info.file_size > self.total_limit:
            return (
                f"archive expands past {self.total_limit >> 20} MiB "
                f"(over {MAX_ZIP_RATIO}x its size): rest refused (zip bomb)"
            )
        return None

    def copy_to(self, entry: Entry, out: BinaryIO, limit: int) -> int:
        info = entry.key
        assert isinstance(info, zipfile.ZipInfo)
        try:
            with self.zip.open(info) as member:
                return _copy_limited(member.read, out, min(limit, info.file_size))
        except MemberError:
            raise
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            OSError,
            EOFError,
            ValueError,
            NotImplementedError,
            RuntimeError,
        ) as exc:
            raise MemberError(f"corrupt archive member ({exc})") from None
        except Exception as exc:  # zlib/bz2/lzma raise their own error types
            raise MemberError(f"corrupt archive member ({type(exc).__name__}: {exc})") from None

    def close(self) -> None:
        self.zip.close()


ISO_MAGIC_OFFSET = 0x8001


def sniff_kind(path: Path) -> str:
    """'folder', 'dicomdir', 'iso' or 'zip' for a path the user picked."""
    if path.is_dir():
        return "folder"
    if path.name.upper() == "DICOMDIR":
        return "dicomdir"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
            fh.seek(ISO_MAGIC_OFFSET)
            iso_magic = fh.read(5)
    except OSError as exc:
        raise MediaError(f"cannot open {path}: {exc.strerror}") from None
    if iso_magic == b"CD001":
        return "iso"
    if head[:2] == b"PK" or zipfile.is_zipfile(path):
        return "zip"
    raise MediaError(
        f"{path} is not a folder, DICOMDIR, ISO image or zip archive",
        hint="pick the disc's folder, its DICOMDIR, an .iso or a .zip file",
    )


def open_source(path: str | os.PathLike[str]) -> MediaSource:
    """Open the right reader for a folder, a DICOMDIR (its folder), an ISO or a zip."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"no such file or folder: {path}", hint="check the path")
    kind = sniff_kind(path)
    if kind == "folder":
        return FolderSource(path)
    if kind == "dicomdir":
        return FolderSource(path.parent)
    if kind == "iso":
        return IsoSource(path)
    return ZipSource(path)
