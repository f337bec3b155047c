"""An exclusive lock on a file, held across processes (flock where the OS has it)."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: one process owns the cache there
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def exclusive_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold `path`'s lock (created if missing); yields False when another process holds it."""
    if fcntl is None:
        yield True
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                yield False
                return
            raise
        yield True
    finally:
        os.close(fd)


def unlocked_folders(root: Path, lock_name: str) -> Iterator[Path]:
    """Each folder under `root` whose `lock_name` file no process holds, yielded under that lock.

    What crash recovery walks: a journal folder still locked belongs to a
    live process and is left to it.
    """
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        with exclusive_lock(folder / lock_name, blocking=False) as mine:
            if mine:
                yield folder
