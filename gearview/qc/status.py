"""Where each study stands (SPEC §2.10, §3): received, edited, sent, committed, send failed.

A study is `received` until it is edited here; after that its latest event
decides: an edit makes it `edited` (a send before the edit sent the old
values), a send makes it `sent`, `committed` once the node confirmed every
instance by Storage Commitment, or `send-failed` when some instances were
refused. `sent` lists the latest send to each node; `findings` the safety
check codes (`qc/checks.py`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gearview.qc.checks import findings_by_study
from gearview.store import Cache
from gearview.store.ledger import Send
from gearview.store.records import StudyRecord

RECEIVED, EDITED, SENT, COMMITTED, SEND_FAILED = (
    "received", "edited", "sent", "committed", "send-failed")


@dataclass(frozen=True)
class Standing:
    status: str = RECEIVED
    sent: list[Send] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The SPEC §3 `ls --json` keys."""
        return {
            "status": self.status,
            "sent": [{"node": s.node, "time": _iso(s.time), "instances": s.instances,
                      "committed": s.committed} for s in self.sent],
            "findings": list(self.findings),
        }


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def _status(last_edit: float | None, sends: list[Send]) -> str:
    last = sends[-1] if sends else None
    if last is not None and (last_edit is None or last.time >= last_edit):
        if last.failed:
            return SEND_FAILED
        if last.instances and last.committed >= last.instances:
            return COMMITTED
        return SENT
    return EDITED if last_edit is not None else RECEIVED


def standings(cache: Cache, study_uids: Iterable[str]) -> dict[str, Standing]:
    """The standing of every study asked about (a few queries for all of them)."""
    uids = list(dict.fromkeys(study_uids))
    edits = cache.ledger.last_edits(uids)
    sends = cache.ledger.sends(uids)
    findings = findings_by_study(cache, uids)
    result = {}
    for uid in uids:
        history = sends.get(uid, [])
        latest: dict[str, Send] = {}
        for send in history:
            latest[send.node] = send
        result[uid] = Standing(_status(edits.get(uid), history), list(latest.values()),
                               [f.code for f in findings.get(uid, [])])
    return result


@dataclass
class ListedStudy(StudyRecord):
    """A study as the station's list shows it: its record and where it stands."""

    standing: Standing = field(default_factory=Standing)

    @property
    def status(self) -> str:
        return self.standing.status

    @property
    def findings(self) -> list[str]:
        return self.standing.findings


def listed_studies(cache: Cache, study_uids: Iterable[str] | None = None) -> list[ListedStudy]:
    """Every study (or these), newest first, with its standing."""
    records = cache.studies() if study_uids is None else cache.studies_by_uid(study_uids)
    found = standings(cache, [r.study_instance_uid for r in records])
    names = [f.name for f in dataclasses.fields(StudyRecord)]
    return [ListedStudy(**{n: getattr(r, n) for n in names}, standing=found[r.study_instance_uid])
            for r in records]
