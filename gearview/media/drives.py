"""Candidate import sources: mounted optical discs and USB sticks on Linux, macOS, Windows.

Listing never reads the media themselves, only the mount table (Linux),
/Volumes (macOS) or the drive letters and their types (Windows).
"""

from __future__ import annotations

import os
import platform
import string
from dataclasses import dataclass
from pathlib import Path

#: File systems found on patient CDs/DVDs and USB sticks.
MEDIA_FS = {"iso9660", "udf", "vfat", "exfat", "msdos", "ntfs", "ntfs3", "fuseblk", "hfsplus"}
REMOVABLE_ROOTS = ("/media/", "/run/media/", "/mnt/")
#: GetDriveTypeW results we offer (2 = removable, 5 = CD-ROM).
_WIN_TYPES = {2: "removable", 5: "cdrom"}


@dataclass(frozen=True)
class MediaCandidate:
    path: Path
    kind: str  # "cdrom", "removable"
    label: str


def _unescape_mount(text: str) -> str:
    return (
        text.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def linux_candidates(mounts_file: str = "/proc/mounts") -> list[MediaCandidate]:
    out = []
    try:
        lines = Path(mounts_file).read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mount, fstype = fields[0], _unescape_mount(fields[1]), fields[2]
        if fstype not in MEDIA_FS and not mount.startswith(REMOVABLE_ROOTS):
            continue
        if fstype not in MEDIA_FS and fstype in ("tmpfs", "proc", "sysfs"):
            continue
        kind = "cdrom" if fstype in ("iso9660", "udf") or "/sr" in device else "removable"
        out.append(MediaCandidate(Path(mount), kind, Path(mount).name or device))
    return out


def mac_candidates(volumes: str = "/Volumes") -> list[MediaCandidate]:
    root = Path(volumes)
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [
        MediaCandidate(p, "removable", p.name) for p in entries if p.is_dir() and not p.is_symlink()
    ]  # the boot volume is a symlink to /


def windows_drives() -> list[tuple[str, str]]:
    """(drive root, kind) for removable and CD-ROM drives (Windows only)."""
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    mask = kernel32.GetLogicalDrives()
    drives = []
    for i, letter in enumerate(string.ascii_uppercase):
        if mask & (1 << i):
            root = f"{letter}:\\"
            kind = _WIN_TYPES.get(kernel32.GetDriveTypeW(root))
            if kind:
                drives.append((root, kind))
    return drives


def list_candidates() -> list[MediaCandidate]:
    """Mounted removable media and discs the user may import from."""
    system = platform.system()
    if system == "Windows":
        return [
            MediaCandidate(Path(root), kind, root)
            for root, kind in windows_drives()
            if os.path.exists(root)
        ]
    if system == "Darwin":
        return mac_candidates()
    return linux_candidates()
