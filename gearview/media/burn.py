"""Burning an ISO image to a drive through one interface, then reading it back.

Backends: Linux `xorriso` (cdrecord emulation; `stdio:FILE` is an emulated
drive), Windows IMAPI2 (PowerShell + COM), macOS `hdiutil burn`. After the
write, the disc is read back with pycdlib and the SHA-256 of every file is
compared with the image's: a burn is only reported good when all match.
The burner runs as a subprocess we can cancel; its failure (drive pulled,
disc full, killed) is reported as a failed burn.
"""

from __future__ import annotations

import logging
import platform
import re
import shutil
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from gearview.errors import Cancelled
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.media.fileset import MediaWriteError
from gearview.media.iso import iso_checksums

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2
MEDIA_QUERY_SECONDS = 60
STDIO_PREFIX = "stdio:"


@dataclass
class VerifyResult:
    files: int = 0
    mismatched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing and self.files > 0

    def summary(self) -> str:
        if self.ok:
            return f"verified: all {self.files} file(s) read back with matching checksums"
        return (
            f"verification FAILED: {len(self.mismatched)} file(s) differ, "
            f"{len(self.missing)} missing, of {self.files}"
        )


class BurnBackend(ABC):
    name = "burner"

    @abstractmethod
    def available(self) -> bool:
        """True when this backend's tool exists on this machine."""

    @abstractmethod
    def command(self, image: Path, device: str) -> list[str]:
        """The burner command line (arguments only, never a shell string)."""

    def media_space(self, device: str) -> int | None:
        """Free bytes on the medium in the drive, or None when this backend cannot tell."""
        return None

    def readback_path(self, device: str) -> str:
        """Where the written disc can be read back as an ISO (device node or emulated file)."""
        return device[len(STDIO_PREFIX) :] if device.startswith(STDIO_PREFIX) else device

    def burn(
        self,
        image: Path,
        device: str,
        progress: ProgressCallback = no_progress,
        token: CancelToken | None = None,
    ) -> None:
        """Run the burner; raises MediaWriteError on failure, Cancelled when cancelled."""
        cmd = self.command(image, device)
        log.info("burning with %s", cmd[0])
        progress(Progress(0, None, f"burning with {self.name}"))
        try:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            raise MediaWriteError(f"cannot start {cmd[0]}: {exc.strerror}") from None
        started = time.monotonic()
        while proc.poll() is None:
            if token is not None and token.wait(POLL_SECONDS):
                proc.kill()
                proc.communicate()
                raise Cancelled("burn cancelled; the disc is incomplete")
            if token is None:
                time.sleep(POLL_SECONDS)
            progress(Progress(0, None, f"burning ({time.monotonic() - started:.0f} s)"))
        _out, err = proc.communicate()
        if proc.returncode != 0:
            tail = " ".join(err.decode("utf-8", "replace").strip().splitlines()[-2:])
            raise MediaWriteError(
                f"{self.name} failed (exit {proc.returncode}): {tail}",
                hint="check the disc and the drive, then burn again",
            )


class XorrisoBackend(BurnBackend):
    name = "xorriso"

    def available(self) -> bool:
        return shutil.which("xorriso") is not None

    def media_space(self, device: str) -> int | None:
        """`-tell_media_space` in 2048-byte sectors; None when the drive cannot be read."""
        try:
            done = subprocess.run(
                ["xorriso", "-outdev", device, "-tell_media_space"],
                capture_output=True,
                text=True,
                timeout=MEDIA_QUERY_SECONDS,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = re.search(r"Media space\s*:\s*(\d+)s", done.stdout + done.stderr)
        return int(match.group(1)) * 2048 if match else None

    def command(self, image: Path, device: str) -> list[str]:
        return [
            "xorriso",
            "-abort_on",
            "FAILURE",
            "-as",
            "cdrecord",
            "-v",
            f"dev={device}",
            "-dao",
            str(image),
        ]


class HdiutilBackend(BurnBackend):
    """macOS: `hdiutil burn` (device ids come from `drutil list`)."""

    name = "hdiutil"

    def available(self) -> bool:
        return shutil.which("hdiutil") is not None

    def command(self, image: Path, device: str) -> list[str]:
        cmd = ["hdiutil", "burn", str(image), "-noverifyburn", "-noeject"]
        return cmd + (["-device", device] if device else [])


#: PowerShell + IMAPI2: load the image as a stream and write it with MsftDiscFormat2Data.
IMAPI2_SCRIPT = r"""
param([string]$Image, [string]$Device)
$ErrorActionPreference = 'Stop'
$master = New-Object -ComObject IMAPI2.MsftDiscMaster2
$recorder = New-Object -ComObject IMAPI2.MsftDiscRecorder2
$id = $null
foreach ($u in $master) {
  $r = New-Object -ComObject IMAPI2.MsftDiscRecorder2
  $r.InitializeDiscRecorder($u)
  if (($r.VolumePathNames -join ',') -like "*$Device*" -or $u -eq $Device) { $id = $u }
}
if (-not $id) { throw "no recorder matches $Device" }
$recorder.InitializeDiscRecorder($id)
$format = New-Object -ComObject IMAPI2.MsftDiscFormat2Data
$format.Recorder = $recorder
$format.ClientName = 'gearview'
$stream = New-Object -ComObject ADODB.Stream
$stream.Type = 1
$stream.Open()
$stream.LoadFromFile($Image)
$format.Write($stream)
"""


class Imapi2Backend(BurnBackend):
    """Windows: IMAPI2 through PowerShell (no extra install)."""

    name = "IMAPI2"

    def available(self) -> bool:
        return platform.system() == "Windows" and shutil.which("powershell") is not None

    def command(self, image: Path, device: str) -> list[str]:
        return [
            "powershell",
            "-NoProfile",
            "-NonInteractive",
            "-Command",
            f"& {{{IMAPI2_SCRIPT}}} -Image '{_ps_quote(str(image))}' -Device '{_ps_quote(device)}'",
        ]

    def readback_path(self, device: str) -> str:
        letter = device.rstrip(":\\")
        return "\\\\.\\" + letter + ":" if len(letter) == 1 else device


def _ps_quote(text: str) -> str:
    return text.replace("'", "''")


def default_backend() -> BurnBackend:
    """The backend for this platform (xorriso on Linux and other Unix)."""
    system = platform.system()
    if system == "Windows":
        return Imapi2Backend()
    if system == "Darwin":
        return HdiutilBackend()
    return XorrisoBackend()


def list_burners() -> list[str]:
    """Optical writers on this machine (Linux: /dev/sr*; macOS: drutil; Windows: drive letters)."""
    system = platform.system()
    if system == "Linux":
        return sorted(str(p) for p in Path("/dev").glob("sr[0-9]*"))
    if system == "Darwin" and shutil.which("drutil"):
        out = subprocess.run(["drutil", "list"], capture_output=True, text=True, timeout=10).stdout
        return [line.split()[0] for line in out.splitlines()[1:] if line.strip()[:1].isdigit()]
    if system == "Windows":
        from gearview.media.drives import windows_drives

        return [d for d, kind in windows_drives() if kind == "cdrom"]
    return []


def verify(image: Path, readback: str, progress: ProgressCallback = no_progress) -> VerifyResult:
    """Compare the SHA-256 of every file on the written disc with the image's."""
    progress(Progress(0, None, "verifying: reading the disc back"))
    expected = iso_checksums(image)
    actual = iso_checksums(readback)
    result = VerifyResult(files=len(expected))
    for path, digest in expected.items():
        if path not in actual:
            result.missing.append(path)
        elif actual[path] != digest:
            result.mismatched.append(path)
    progress(Progress(1, 1, result.summary()))
    return result


def burn_image(
    image: Path,
    device: str,
    backend: BurnBackend | None = None,
    progress: ProgressCallback = no_progress,
    token: CancelToken | None = None,
    check: bool = True,
) -> VerifyResult | None:
    """Burn, then (by default) read back and verify; raises MediaWriteError on a bad disc."""
    backend = backend or default_backend()
    if not backend.available():
        raise MediaWriteError(
            f"the {backend.name} burner is not installed",
            hint="install xorriso (Linux) or write an ISO file instead",
        )
    space = backend.media_space(device)
    size = image.stat().st_size
    if space is not None and size > space:
        raise MediaWriteError(
            f"the disc in {device} has {space / 1e6:.0f} MB free, "
            f"the image needs {size / 1e6:.0f} MB",
            hint="insert a larger or blank disc, or choose fewer studies",
        )
    backend.burn(image, device, progress, token)
    if not check:
        return None
    result = verify(image, backend.readback_path(device), progress)
    if not result.ok:
        raise MediaWriteError(result.summary(), hint="the disc is not usable: burn a new one")
    return result
