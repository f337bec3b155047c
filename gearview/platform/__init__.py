"""Everything that differs between operating systems, behind small portable interfaces.

No module outside this package imports an OS-specific module (`fcntl`,
`resource`, `termios`, ...) or calls an OS-specific function: the viewer,
the server and the CLI import on Windows as they do on Linux.

- `FileIO` (portable.py): how the cache writes files durably, syncs a batch
  of new files and reserves spool files. `LinuxIO` (linux.py, direct.py) does
  the same with syncfs, O_DIRECT and O_TMPFILE. One is chosen when a cache
  opens (`choose_file_io`); `GEARVIEW_IO=portable` forces the portable one,
  and the test suite runs the engine and peer tests with each.
- locks.py: an exclusive lock on a file, across processes.
- limits.py: an address-space cap for decoder processes.
"""

from __future__ import annotations

import os
import sys

from gearview.errors import ConfigError
from gearview.platform.portable import FileIO

#: Environment variable that picks the file I/O implementation.
IO_ENV = "GEARVIEW_IO"
IO_CHOICES = ("auto", "portable", "linux")


def choose_file_io() -> FileIO:
    """The file I/O for this OS, or the one `GEARVIEW_IO` names (auto, portable, linux)."""
    choice = os.environ.get(IO_ENV, "").strip().lower() or "auto"
    if choice not in IO_CHOICES:
        raise ConfigError(
            IO_ENV,
            f"must be one of {', '.join(IO_CHOICES)}, got {choice!r}",
            hint="unset it to let gearview choose",
        )
    linux = sys.platform.startswith("linux")
    if choice == "linux" and not linux:
        raise ConfigError(IO_ENV, f"the Linux file I/O does not run on {sys.platform}")
    if choice == "portable" or not linux:
        return FileIO()
    from gearview.platform.linux import LinuxIO

    return LinuxIO()


__all__ = ["IO_CHOICES", "IO_ENV", "FileIO", "choose_file_io"]
