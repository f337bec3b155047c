"""The audit log: one JSON line per edit, undo, send, retrieve, receive, import, burn and
override, owner-only (it holds PHI)."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
from typing import Any

from gearview.errors import StoreError
from gearview.home import Home
from gearview.store.atomic import os_error_to_store_error

AUDIT_MODE = 0o600


def user() -> str:
    """Who is acting, as every audit record names them."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def append(home: Home, action: str, **fields: Any) -> dict[str, Any]:
    """Append a record (fsynced) and return it; the file is created 0600."""
    record = {
        "time": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "user": user(),
        "action": action,
        **fields,
    }
    line = json.dumps(record, ensure_ascii=False, sort_keys=False) + "\n"
    path = home.audit_log
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, AUDIT_MODE)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, AUDIT_MODE)
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise os_error_to_store_error(exc, "the audit log") from exc
    return record


def read(home: Home) -> list[dict[str, Any]]:
    """Every record, oldest first (unparseable lines are skipped)."""
    try:
        text = home.audit_log.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StoreError(f"cannot read the audit log: {exc.strerror}") from None
    records = []
    for line in text.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records
