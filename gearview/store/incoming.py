"""An instance arriving over the network, written to the spool as it comes in.

The SCP hands each received fragment to `Incoming.write`, so a data set is
never assembled in memory (a 200 MB multi-frame costs one PDU buffer, not
200 MB) and is copied only from the socket buffer to the file. `finish`
parses the header from the written file, fsyncs it and publishes it through
the cache; `discard` leaves nothing behind.

While the SCP runs, the spool files may be unnamed files opened ahead of
time (`FileIO.spool_reserve`: O_TMPFILE on Linux): only a complete, fsynced
file ever gets a name, so a crash or a refused instance leaves no file at all.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.dataset import FileMetaDataset

from gearview.platform.portable import ReservedFile
from gearview.store.atomic import os_error_to_store_error, spool_path
from gearview.store.header import info_from_buffer, read_instance_info
from gearview.store.records import InstanceInfo

if TYPE_CHECKING:
    from gearview.store.cache import Cache
    from gearview.store.intake import StoredInstance

log = logging.getLogger(__name__)
PREAMBLE = b"\x00" * 128 + b"DICM"
WHAT = "the received instance"


class Background:
    """Run one blocking call on a daemon thread; `wait()` re-raises its error."""

    def __init__(self, fn: Callable[..., object], *args: object) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True,
                                        name="gearview-fsync")
        self._thread.start()

    def _run(self, fn: Callable[..., object], args: tuple[object, ...]) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # handed to the waiting thread
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


class Incoming:
    """One received instance on its way into the cache (create with `Cache.begin_received`).

    Write errors (disk full) are kept, not raised, so the caller can drain
    the rest of the message from the network and answer with a status;
    `finish` raises them.
    """

    def __init__(self, cache: Cache, file_meta: FileMetaDataset, meta_bytes: bytes,
                 reserved: ReservedFile | None) -> None:
        self._cache = cache
        self._meta = file_meta
        self._spool: Path | None = None
        self._reserved = reserved
        self._error: OSError | None = None
        if reserved is None:
            self._spool = spool_path(cache.spool_dir)
            try:
                self._fd = os.open(self._spool, os.O_RDWR | os.O_CREAT | os.O_EXCL
                                   | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0),
                                   0o600)
            except OSError as exc:
                raise os_error_to_store_error(exc, WHAT) from exc
        else:
            self._fd = reserved.fd
        self._data_offset = len(PREAMBLE) + len(meta_bytes)
        self.write(PREAMBLE + meta_bytes)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes; after a failure further bytes are dropped."""
        if self._error is not None or self._fd < 0:
            return
        view = memoryview(data).cast("B")
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as exc:
            self._error = exc
        finally:
            view.release()

    def finish(self, source_ae: str = "",
               check: Callable[[InstanceInfo], None] | None = None) -> StoredInstance:
        """Parse, fsync and publish; raises StoreError/InvalidDicomError with nothing stored.

        `check` sees the parsed header before the file is published; if it
        raises, nothing is stored.
        """
        try:
            if self._error is not None:
                raise os_error_to_store_error(self._error, WHAT)
            info = self._fast_info()
            if info is None:
                info = self._parse_while_syncing(check)
            else:
                if check is not None:
                    check(info)
                os.fsync(self._fd)
            spool = self._named()
        except OSError as exc:
            self.discard()
            raise os_error_to_store_error(exc, WHAT) from exc
        except BaseException:
            self.discard()
            raise
        return self._cache.publish_spool(spool, info, source_ae)

    def discard(self) -> None:
        """Forget the instance: the unnamed file vanishes, a named spool file is removed."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._spool is not None:
            self._spool.unlink(missing_ok=True)
            self._spool = None

    def _text(self, keyword: str) -> str:
        return str(self._meta.get(keyword, "") or "")

    def _fast_info(self) -> InstanceInfo | None:
        """The header parsed from the written bytes (mapped, so pixel data is never read)."""
        with mmap.mmap(self._fd, 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                return info_from_buffer(view[self._data_offset:], self._text("TransferSyntaxUID"),
                                        self._text("MediaStorageSOPClassUID"),
                                        self._text("MediaStorageSOPInstanceUID"))
            finally:
                view.release()

    def _parse_while_syncing(self, check: Callable[[InstanceInfo], None] | None) -> InstanceInfo:
        """Validate with pydicom (what the fast parser left) while the fsync runs."""
        syncing = Background(os.fsync, self._fd)
        try:
            info = read_instance_info(self._spool or self._reserved.path)
            if check is not None:
                check(info)
        finally:
            syncing.wait()
        return info

    def _named(self) -> Path:
        """The fsynced file under a spool name, its descriptor closed."""
        if self._spool is None:
            path = spool_path(self._cache.spool_dir)
            self._reserved.link(path)
            self._spool = path
        spool, self._spool = self._spool, None
        os.close(self._fd)
        self._fd = -1
        return spool
