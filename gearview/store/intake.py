"""What the cache does with an arriving instance before it is stored (SPEC §2.10).

Every way in - C-STORE (both receive paths), C-MOVE and C-GET results,
import - ends in `Cache.publish_spool`, which asks this module two things:

1. Was this study (or instance) edited here? Then the arrival gets the same
   correction before it is stored (`Corrector`, given to the cache by whoever
   opens it: the rewrite lives in `gearview.edit`, above the store). The
   question costs a set lookup for studies without rules (`Ledger.has_rules`).
2. Is its SOP Instance UID already cached as another instance (`conflicts.py`)?
   Then the cached copy stays; the arrival is kept aside under
   `files/.conflicts/` (network: it was acknowledged, it must not be lost) or
   not stored at all (import: it is still on the medium), and the caller gets
   the `Conflict` to report.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gearview.changes import Changes
from gearview.store.atomic import fsync_dir, place
from gearview.store.ledger import Conflict, Rule
from gearview.store.records import InstanceInfo

#: Under the storage folder; hidden folders are not part of the cache (check, rebuild).
CONFLICTS_DIR = ".conflicts"
#: `Conflict.source` of an import.
IMPORT = "import"


@dataclass
class Corrected:
    """An arrival with the corrections of its study applied (a new spool file)."""

    spool: Path
    info: InstanceInfo
    #: keyword -> the value the arrival had
    previous: dict[str, str]


class Corrector(Protocol):
    """Applies correction rules to a spool file (`gearview.edit.corrections.Reapplier`)."""

    def __call__(self, spool: Path, rules: list[Rule], spool_dir: Path,
                 apply: bool = True) -> Corrected | None:
        """The corrected copy, or None when the file already holds every value.

        With `apply=False` nothing is written: a non-None result (with `spool`
        unchanged) says the file would change.
        """


@dataclass
class StoredInstance:
    """What became of one arriving instance."""

    info: InstanceInfo
    #: The cached file of this SOP Instance UID (the cached copy when `conflict` is set).
    path: Path
    changes: Changes
    replaced: bool
    #: keyword -> previous value, when a correction was re-applied before storing
    corrected: dict[str, str] = field(default_factory=dict)
    #: Set when the arrival was NOT stored: why, and where it was kept (if it was).
    conflict: Conflict | None = None

    @property
    def stored(self) -> bool:
        return self.conflict is None


def set_aside(spool: Path, files_dir: Path, keep: bool) -> str:
    """Keep a refused arrival under `.conflicts/` (returns its relative path) or drop it."""
    if not keep:
        spool.unlink(missing_ok=True)
        return ""
    rel = Path(CONFLICTS_DIR) / f"{uuid.uuid4().hex}.dcm"
    target = files_dir / rel
    place(spool, target, "the conflicting instance")
    fsync_dir(target.parent)
    return rel.as_posix()
