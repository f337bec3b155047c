"""A thread-safe LRU cache of decoded frames, bounded in bytes (config.viewer.frame_cache_bytes).

It holds stored values (before the LUTs), so a W/L change re-renders from
memory; decoder threads put, the GUI thread gets.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np


class FrameCache:
    """Least-recently-used frames, evicted once their total size passes `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: Hashable) -> np.ndarray | None:
        with self._lock:
            arr = self._items.get(key)
            if arr is not None:
                self._items.move_to_end(key)
            return arr

    def put(self, key: Hashable, arr: np.ndarray) -> None:
        """Keep `arr` (read-only) unless it alone is larger than the whole cache."""
        if arr.nbytes > self.max_bytes:
            return
        arr.flags.writeable = False
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._items[key] = arr
            self._bytes += arr.nbytes
            while self._bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    def discard(self, predicate: Callable[[Hashable], bool]) -> int:
        """Drop every frame whose key matches (the instance changed); returns how many."""
        with self._lock:
            keys = [k for k in self._items if predicate(k)]
            for key in keys:
                self._bytes -= self._items.pop(key).nbytes
        return len(keys)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
