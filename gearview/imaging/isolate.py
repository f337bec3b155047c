"""Decode compressed frames in worker processes, with an address-space limit where the OS has one.

The JPEG / JPEG-LS / JPEG 2000 / RLE decoders are C code fed with bytes
from outside: a crafted frame can make them allocate gigabytes or crash.
In the viewer that must not take the whole application down (RELIABILITY
30), so compressed frames go to a small process pool; a worker that dies is
reported as "decoder crashed on frame N" and the pool is started afresh.
Native (uncompressed) frames need no C decoder and stay in-process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from gearview.imaging.errors import DecodeError, ImageError
from gearview.platform.limits import limit_address_space

log = logging.getLogger(__name__)

#: Extra address space a decoding process may take beyond what it holds at start.
DEFAULT_MEMORY_LIMIT = 2 << 30


def _decode(path: str, index: int) -> np.ndarray:
    from gearview.imaging.decode import ImageSource

    return ImageSource(Path(path)).decode(index)


class IsolatedDecoder:
    """A lazily started process pool that decodes one frame per call."""

    def __init__(self, workers: int = 2, memory_limit: int = DEFAULT_MEMORY_LIMIT) -> None:
        self.workers = workers
        self.memory_limit = memory_limit
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise DecodeError("the decoder is shut down")
            if self._pool is None:
                context = multiprocessing.get_context("spawn")  # never fork a Qt process
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=context,
                    initializer=limit_address_space,
                    initargs=(self.memory_limit,),
                )
            return self._pool

    def start(self) -> None:
        """Start the worker processes ahead of the first compressed frame."""
        pool = self._executor()
        for _ in range(self.workers):
            pool.submit(os.getpid)

    def decode(self, path: Path, index: int) -> np.ndarray:
        """Frame `index` of `path`, decoded in a worker process."""
        pool = self._executor()
        try:
            return pool.submit(_decode, os.fspath(path), index).result()
        except BrokenProcessPool as exc:
            self._restart(pool)
            raise DecodeError(
                f"frame {index + 1}: the decoder crashed on this frame",
                hint="the compressed data is probably corrupt",
            ) from exc
        except MemoryError as exc:
            raise DecodeError(
                f"frame {index + 1}: decoding needs more memory than allowed "
                f"({self.memory_limit >> 20} MiB)"
            ) from exc
        except ImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - anything a worker raised is this frame's problem
            raise DecodeError(f"frame {index + 1}: {exc}") from exc

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)
        log.warning("a frame decoder process died; starting a new one")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
