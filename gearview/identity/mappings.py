"""Remembered reconciliations: the next disc from the same hospital proposes the same patient.

One JSON file under the home folder (owner-only: it holds patient IDs) maps
an outside (issuer, Patient ID) to the local identity it was reconciled to.
The hospital is told apart by the outside Issuer of Patient ID, or by the
Institution Name when the disc has no issuer; with neither nothing is
remembered (two hospitals' "12345" must never be confused).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from gearview.home import Home
from gearview.identity.lookup import Candidate, PatientIdentity
from gearview.store.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

FILE_NAME = "reconcile-mappings.json"
FILE_MODE = 0o600
REMEMBERED = "remembered"


def _path(home: Home) -> Path:
    return home.root / FILE_NAME


def outside_key(patient_id: str, issuer: str, institution: str = "") -> str | None:
    """The key of an outside patient, None when the hospital cannot be told apart."""
    hospital = issuer.strip() or institution.strip()
    if not patient_id.strip() or not hospital:
        return None
    return f"{hospital}\x1f{patient_id.strip()}"


def _load(home: Home) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(_path(home).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring the remembered reconciliations: %s", exc)
        return {}
    return data if isinstance(data, dict) else {}


def remembered(home: Home, patient_id: str, issuer: str, institution: str = "") -> Candidate | None:
    """The local patient this outside patient was reconciled to last time, as a candidate."""
    key = outside_key(patient_id, issuer, institution)
    entry = _load(home).get(key) if key else None
    if not isinstance(entry, dict) or not entry.get("patient_id"):
        return None
    identity = PatientIdentity(
        str(entry["patient_id"]),
        str(entry.get("issuer", "")),
        str(entry.get("name", "")),
        str(entry.get("birth_date", "")),
        str(entry.get("sex", "")),
    )
    when = str(entry.get("time", ""))
    return Candidate(
        identity, REMEMBERED, 1.0, [f"this outside patient was reconciled to it on {when}"]
    )


def remember(
    home: Home, outside: PatientIdentity, local: PatientIdentity, institution: str = ""
) -> bool:
    """Record outside -> local (atomic write); False when the hospital is unknown."""
    key = outside_key(outside.patient_id, outside.issuer, institution)
    if key is None:
        return False
    data = _load(home)
    data[key] = {**asdict(local), "time": time.strftime("%Y-%m-%d")}
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True)
    atomic_write_bytes(_path(home), text.encode("utf-8"), mode=FILE_MODE)
    return True
