"""Studies protected from the retention policy (the GUI's "Keep", `gearview keep`).

The index is a cache of the files (`store rebuild` recreates it from them
alone), so a flag the files do not hold lives beside it: `keep.json` in the
home folder, Study Instance UID -> when, by whom and why, rewritten
atomically under a cross-process lock. A protected study is never purged
automatically; deleting it by hand (`gearview rm`) still works and drops the flag.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gearview.errors import StoreError
from gearview.home import Home
from gearview.platform.locks import exclusive_lock
from gearview.store import audit
from gearview.store.atomic import atomic_write_bytes

log = logging.getLogger(__name__)
KEEP_FILE = "keep.json"


def _path(home: Home) -> Path:
    return home.root / KEEP_FILE


def kept(home: Home) -> dict[str, dict[str, Any]]:
    """Every protected study: UID -> {time, user, reason}."""
    try:
        data = json.loads(_path(home).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.error("the Keep list %s cannot be read (%s): no study is purged meanwhile",
                  KEEP_FILE, exc)
        raise StoreError(f"the Keep list {KEEP_FILE} cannot be read: {exc}",
                         hint="fix or remove the file; until then nothing is purged") from None
    return data if isinstance(data, dict) else {}


def set_kept(home: Home, study_uids: Iterable[str], keep: bool = True,
             reason: str = "") -> list[str]:
    """Protect (or release) studies; returns the UIDs whose flag changed (audited)."""
    uids = list(dict.fromkeys(study_uids))
    with exclusive_lock(home.root / f"{KEEP_FILE}.lock"):
        current = kept(home)
        changed = [u for u in uids if (u in current) != keep]
        if not changed:
            return []
        for uid in changed:
            if keep:
                current[uid] = {"time": time.time(), "user": audit.user(), "reason": reason}
            else:
                current.pop(uid, None)
        atomic_write_bytes(_path(home), json.dumps(current, indent=1).encode(), mode=0o600)
    for uid in changed:
        audit.append(home, "keep" if keep else "release", study_uid=uid, reason=reason)
    return changed
