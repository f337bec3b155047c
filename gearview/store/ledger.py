"""The station's QC ledger (`qc.sqlite` in the home folder): what the files cannot tell.

- Correction rules: every edit, structure fix and tag edit is remembered as
  the values it set, keyed by the study (and instance) it was made on, so an
  instance that arrives again gets the same correction before it is stored
  (SPEC §2.10). Undo removes the rules of that edit.
- Edits and sends per study (node, time, instances, commitment): where each
  study stands.
- Arrivals that were not stored as they came (`Conflict`): a SOP Instance UID
  already cached under another study or patient, or with other pixel data,
  and instances of a corrected study stored without the correction.

Unlike the index this is not a cache of the files: `gearview store rebuild`
never touches it. Writes are rare (edits, sends, conflicts), so one
connection serves every thread under a lock; the receive path only asks
`has_rules`, answered from memory and refreshed when another process changed
the file (a `stat`, no query).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom.tag import Tag

from gearview.errors import StoreError

SCHEMA_VERSION = 1
BUSY_TIMEOUT = 10.0
STUDY_UID_TAG = int(Tag("StudyInstanceUID"))

SCHEMA = """
CREATE TABLE IF NOT EXISTS rule (
    id INTEGER PRIMARY KEY,
    study_uid TEXT NOT NULL,
    sop_uid TEXT NOT NULL DEFAULT '',
    tag INTEGER NOT NULL,
    vr TEXT NOT NULL,
    value TEXT NOT NULL,
    reason TEXT NOT NULL,
    undo_id TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rule_study ON rule(study_uid);
CREATE INDEX IF NOT EXISTS rule_sop ON rule(sop_uid);
CREATE INDEX IF NOT EXISTS rule_undo ON rule(undo_id);
CREATE TABLE IF NOT EXISTS edit (
    id INTEGER PRIMARY KEY,
    study_uid TEXT NOT NULL,
    undo_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS edit_study ON edit(study_uid);
CREATE TABLE IF NOT EXISTS send (
    id INTEGER PRIMARY KEY,
    study_uid TEXT NOT NULL,
    node TEXT NOT NULL,
    time REAL NOT NULL,
    instances INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    committed INTEGER NOT NULL DEFAULT 0,
    job TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS send_study ON send(study_uid);
CREATE TABLE IF NOT EXISTS conflict (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    sop_uid TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    issuer TEXT NOT NULL,
    cached_study_uid TEXT NOT NULL,
    cached_patient_id TEXT NOT NULL,
    cached_issuer TEXT NOT NULL,
    source TEXT NOT NULL,
    kept TEXT NOT NULL,
    time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conflict_study ON conflict(study_uid);
CREATE INDEX IF NOT EXISTS conflict_cached ON conflict(cached_study_uid);
"""

#: Conflict kinds: why an arriving instance was not stored as it came.
OTHER_STUDY = "other-study"
OTHER_PATIENT = "other-patient"
OTHER_CONTENT = "other-content"
NOT_CORRECTED = "correction-not-applied"


@dataclass(frozen=True)
class Rule:
    """One value an edit set: re-applied to instances of `study_uid` (or only `sop_uid`)."""

    study_uid: str
    sop_uid: str
    tag: int
    vr: str
    value: object
    #: Reason for the Attribute Modification (0400,0565) of the edit (CORRECT, COERCE).
    reason: str
    undo_id: str
    created: float = 0.0


@dataclass
class Conflict:
    """An arriving instance that was not stored as it came, and what the cache holds instead."""

    kind: str
    sop_uid: str
    study_uid: str
    patient_id: str
    issuer: str
    cached_study_uid: str = ""
    cached_patient_id: str = ""
    cached_issuer: str = ""
    #: The calling AE title, or "import".
    source: str = ""
    #: Where the arrival was kept (relative to the storage folder); "" when it was not.
    kept: str = ""
    time: float = field(default_factory=time.time)
    id: int = 0

    def describe(self) -> str:
        """One line for the user (no names or birth dates: IDs and UIDs only)."""
        where = f"cached under study {self.cached_study_uid}"
        if self.kind == OTHER_PATIENT:
            where += f" for patient ID {self.cached_patient_id!r}"
        text = {
            OTHER_STUDY: f"SOP Instance UID {self.sop_uid} arrived for study {self.study_uid} "
                         f"but is {where}",
            OTHER_PATIENT: f"SOP Instance UID {self.sop_uid} arrived for patient ID "
                           f"{self.patient_id!r} but is {where}",
            OTHER_CONTENT: f"SOP Instance UID {self.sop_uid} arrived again with other pixel "
                           f"data than the copy {where}",
            NOT_CORRECTED: f"instance {self.sop_uid} was stored without the study's correction "
                           "([qc] reapply_corrections is off)",
        }[self.kind]
        if self.kept:
            text += "; the arrival is kept aside"
        return text


@dataclass(frozen=True)
class Send:
    """One send of (part of) a study to a node."""

    study_uid: str
    node: str
    time: float
    instances: int
    failed: int
    committed: int = 0
    job: str = ""


class Ledger:
    """The QC ledger of one home folder (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = self._connect()
        self._stamp: tuple[int, int, int] | None = None
        self._rule_studies: set[str] = set()
        self._rule_sops: set[str] = set()
        self._load_keys()

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=FULL")
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                conn.executescript(SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            if os.name == "posix":
                os.chmod(self.path, 0o600)
            return conn
        except (sqlite3.DatabaseError, OSError) as exc:
            raise StoreError(f"the QC ledger {self.path.name} cannot be opened: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, sql: str, rows: Iterable[tuple]) -> None:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise StoreError(f"could not update the QC ledger: {exc}") from None

    def _query(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, tuple(params)).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"could not read the QC ledger: {exc}") from None

    # ---- correction rules --------------------------------------------------

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _load_keys(self) -> None:
        with self._lock:
            stamp = self._file_stamp()
            rows = self._query("SELECT DISTINCT study_uid, sop_uid FROM rule")
            self._rule_studies = {r["study_uid"] for r in rows if not r["sop_uid"]}
            self._rule_sops = {r["sop_uid"] for r in rows if r["sop_uid"]}
            self._stamp = stamp

    def has_rules(self, study_uid: str, sop_uid: str) -> bool:
        """Whether an arriving instance may need a correction (memory, one stat; no query)."""
        if self._file_stamp() != self._stamp:  # another process (or thread) changed the file
            self._load_keys()
        return study_uid in self._rule_studies or sop_uid in self._rule_sops

    def add_rules(self, rules: Iterable[Rule]) -> None:
        now = time.time()
        rows = [(r.study_uid, r.sop_uid, int(r.tag), r.vr, json.dumps(r.value), r.reason,
                 r.undo_id, r.created or now) for r in rules]
        if not rows:
            return
        self._write("INSERT INTO rule(study_uid, sop_uid, tag, vr, value, reason, undo_id, "
                    "created) VALUES (?,?,?,?,?,?,?,?)", rows)
        self._load_keys()

    def remove_edit(self, undo_id: str) -> None:
        """Forget an undone edit: its rules and its place in the studies' history."""
        self._write("DELETE FROM rule WHERE undo_id = ?", [(undo_id,)])
        self._write("DELETE FROM edit WHERE undo_id = ?", [(undo_id,)])
        self._load_keys()

    @staticmethod
    def _rule(row: sqlite3.Row) -> Rule:
        return Rule(row["study_uid"], row["sop_uid"], row["tag"], row["vr"],
                    json.loads(row["value"]), row["reason"], row["undo_id"], row["created"])

    def rules_for(self, study_uid: str, sop_uid: str) -> list[Rule]:
        """The rules for an arriving instance, in the order they apply.

        The study's rules and the instance's own, oldest first; when they move
        the instance into another study, that study's rules follow.
        """
        rows = self._query(
            "SELECT * FROM rule WHERE (study_uid = ? AND sop_uid = '') OR sop_uid = ? "
            "ORDER BY created, id", (study_uid, sop_uid))
        rules = [self._rule(r) for r in rows]
        moved_to = next((r.value for r in reversed(rules) if r.tag == STUDY_UID_TAG), None)
        if isinstance(moved_to, str) and moved_to != study_uid:
            rows = self._query("SELECT * FROM rule WHERE study_uid = ? AND sop_uid = '' "
                               "ORDER BY created, id", (moved_to,))
            rules += [self._rule(r) for r in rows]
        return rules

    def corrected_studies(self, study_uids: Iterable[str]) -> set[str]:
        """Which of these studies have study-level rules."""
        if self._file_stamp() != self._stamp:
            self._load_keys()
        return set(study_uids) & self._rule_studies

    # ---- history: edits and sends -------------------------------------------

    def record_edit(self, study_uids: Iterable[str], undo_id: str, kind: str) -> None:
        now = time.time()
        self._write("INSERT INTO edit(study_uid, undo_id, kind, time) VALUES (?,?,?,?)",
                    [(uid, undo_id, kind, now) for uid in dict.fromkeys(study_uids)])

    def last_edits(self, study_uids: Iterable[str]) -> dict[str, float]:
        uids = json.dumps(list(study_uids))
        rows = self._query("SELECT study_uid, max(time) AS t FROM edit WHERE study_uid IN "
                           "(SELECT value FROM json_each(?)) GROUP BY study_uid", (uids,))
        return {r["study_uid"]: r["t"] for r in rows}

    def record_send(self, sends: Iterable[Send]) -> None:
        self._write(
            "INSERT INTO send(study_uid, node, time, instances, failed, committed, job) "
            "VALUES (?,?,?,?,?,?,?)",
            [(s.study_uid, s.node, s.time, s.instances, s.failed, s.committed, s.job)
             for s in sends])

    def record_commitment(self, job: str, committed: dict[str, int]) -> None:
        """Storage Commitment answered for a send job: instances committed per study."""
        self._write("UPDATE send SET committed = ? WHERE job = ? AND study_uid = ?",
                    [(count, job, uid) for uid, count in committed.items()])

    def sends(self, study_uids: Iterable[str]) -> dict[str, list[Send]]:
        """Every send of these studies, oldest first."""
        uids = json.dumps(list(study_uids))
        rows = self._query("SELECT * FROM send WHERE study_uid IN (SELECT value FROM "
                           "json_each(?)) ORDER BY time, id", (uids,))
        found: dict[str, list[Send]] = defaultdict(list)
        for r in rows:
            found[r["study_uid"]].append(Send(r["study_uid"], r["node"], r["time"],
                                              r["instances"], r["failed"], r["committed"],
                                              r["job"]))
        return dict(found)

    def forget_copies(self, study_uids: Iterable[str]) -> None:
        """The studies were deleted here: drop what described their copies.

        Their sends go (a copy that arrives again has not been sent from here),
        and so do the conflicts of their own arrivals that kept nothing aside
        (instances stored without the correction, or refused at import). Their
        correction rules and edits stay: a correction stays made when a study
        arrives again (SPEC §2.10). Conflicts whose arrival is kept under
        `.conflicts/` stay too, until someone settles them.
        """
        rows = [(uid,) for uid in dict.fromkeys(study_uids)]
        self._write("DELETE FROM send WHERE study_uid = ?", rows)
        self._write("DELETE FROM conflict WHERE study_uid = ? AND kept = ''", rows)

    # ---- conflicts ------------------------------------------------------------

    def add_conflict(self, conflict: Conflict) -> None:
        c = conflict
        self._write(
            "INSERT INTO conflict(kind, sop_uid, study_uid, patient_id, issuer, "
            "cached_study_uid, cached_patient_id, cached_issuer, source, kept, time) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            [(c.kind, c.sop_uid, c.study_uid, c.patient_id, c.issuer, c.cached_study_uid,
              c.cached_patient_id, c.cached_issuer, c.source, c.kept, c.time)])

    def conflicts(self, study_uids: Iterable[str]) -> dict[str, list[Conflict]]:
        """Conflicts naming these studies (as the arrival's study or the cached one)."""
        uids = json.dumps(list(study_uids))
        rows = self._query(
            "SELECT * FROM conflict WHERE study_uid IN (SELECT value FROM json_each(?1)) "
            "OR cached_study_uid IN (SELECT value FROM json_each(?1)) ORDER BY time, id",
            (uids,))
        wanted = set(json.loads(uids))
        found: dict[str, list[Conflict]] = defaultdict(list)
        for r in rows:
            conflict = Conflict(**{k: r[k] for k in r.keys()})
            for uid in {conflict.study_uid, conflict.cached_study_uid} & wanted:
                found[uid].append(conflict)
        return dict(found)
