"""How full the cache is: its size, the storage disk's free space, and the configured limits.

`StorageState` is what the status bar shows and what the retention policy
and the store gate decide on. Sizes count the indexed files (undo journals
and the spool are not the cache's size, but they do take free space).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from gearview.config import Config
from gearview.store import Cache

OK, WARNING, FULL = "ok", "warning", "full"
#: Warn this far before a limit: free space under 1.5 x the floor, or the cache over 90 %.
WARN_FREE_FACTOR = 1.5
WARN_SIZE_FRACTION = 0.9
#: Without a configured floor, warn when the storage disk has less than this share free.
DEFAULT_WARN_FREE_FRACTION = 0.05


@dataclass(frozen=True)
class Usage:
    cache_bytes: int
    free_bytes: int
    disk_bytes: int


@dataclass(frozen=True)
class Limits:
    """The retention limits in bytes (0: none)."""

    max_size: int
    min_free: int

    @classmethod
    def of(cls, config: Config, disk_bytes: int) -> Limits:
        return cls(config.storage.size_limit(), config.storage.free_floor(disk_bytes))

    @property
    def any(self) -> bool:
        return bool(self.max_size or self.min_free)

    def over(self, usage: Usage) -> bool:
        """True when a limit is crossed: purge (or refuse stores) until it is not."""
        return bool((self.max_size and usage.cache_bytes > self.max_size)
                    or (self.min_free and usage.free_bytes < self.min_free))

    def crossed(self, usage: Usage) -> str:
        """Which limits `usage` crosses, in words ('' when none)."""
        reasons = []
        if self.max_size and usage.cache_bytes > self.max_size:
            reasons.append(f"cache {human(usage.cache_bytes)} over "
                           f"storage.max_size {human(self.max_size)}")
        if self.min_free and usage.free_bytes < self.min_free:
            reasons.append(f"free space {human(usage.free_bytes)} under "
                           f"storage.min_free {human(self.min_free)}")
        return "; ".join(reasons)

    def excess(self, usage: Usage) -> int:
        """Bytes to remove to be within both limits."""
        by_size = usage.cache_bytes - self.max_size if self.max_size else 0
        by_free = self.min_free - usage.free_bytes if self.min_free else 0
        return max(0, by_size, by_free)


@dataclass(frozen=True)
class StorageState:
    """What the status bar shows: usage, limits and how close they are."""

    usage: Usage
    limits: Limits
    level: str

    def describe(self) -> str:
        free = f"{human(self.usage.free_bytes)} free"
        if self.limits.min_free:
            free += f" (keeps {human(self.limits.min_free)})"
        size = f"cache {human(self.usage.cache_bytes)}"
        if self.limits.max_size:
            size += f" of {human(self.limits.max_size)}"
        return f"{free} · {size}"


def human(size: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as disks are sold)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def measure(cache: Cache) -> Usage:
    disk = shutil.disk_usage(cache.files_dir)
    return Usage(cache.size(), disk.free, disk.total)


def level_of(usage: Usage, limits: Limits) -> str:
    if limits.over(usage):
        return FULL
    warn_free = (limits.min_free * WARN_FREE_FACTOR if limits.min_free
                 else usage.disk_bytes * DEFAULT_WARN_FREE_FRACTION)
    near_size = limits.max_size and usage.cache_bytes > limits.max_size * WARN_SIZE_FRACTION
    return WARNING if usage.free_bytes < warn_free or near_size else OK


def storage_state(cache: Cache, config: Config) -> StorageState:
    usage = measure(cache)
    limits = Limits.of(config, usage.disk_bytes)
    return StorageState(usage, limits, level_of(usage, limits))
