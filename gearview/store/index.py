"""The SQLite index over the cached files (WAL, one connection per thread).

The index is a cache of the files: everything in it can be recreated from
`files/` by `gearview store rebuild`. Writes that gate an acknowledgement to
a peer commit with synchronous=FULL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from pathlib import Path

from gearview.errors import IndexCorruptError, StoreError
from gearview.store.inspect import InstanceInfo

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS patient (
    pk INTEGER PRIMARY KEY,
    patient_id TEXT NOT NULL,
    issuer TEXT NOT NULL,
    patient_name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    sex TEXT NOT NULL,
    UNIQUE (patient_id, issuer, patient_name, birth_date)
);
CREATE TABLE IF NOT EXISTS study (
    study_uid TEXT PRIMARY KEY,
    patient_pk INTEGER NOT NULL REFERENCES patient(pk),
    study_date TEXT NOT NULL DEFAULT '',
    study_time TEXT NOT NULL DEFAULT '',
    accession TEXT NOT NULL DEFAULT '',
    study_id TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    referring_physician TEXT NOT NULL DEFAULT '',
    institution TEXT NOT NULL DEFAULT '',
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS study_patient ON study(patient_pk);
CREATE INDEX IF NOT EXISTS study_date ON study(study_date);
CREATE TABLE IF NOT EXISTS series (
    series_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL REFERENCES study(study_uid),
    modality TEXT NOT NULL DEFAULT '',
    number INTEGER,
    description TEXT NOT NULL DEFAULT '',
    body_part TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS series_study ON series(study_uid);
CREATE TABLE IF NOT EXISTS instance (
    sop_uid TEXT PRIMARY KEY,
    series_uid TEXT NOT NULL REFERENCES series(series_uid),
    study_uid TEXT NOT NULL,
    sop_class TEXT NOT NULL,
    transfer_syntax TEXT NOT NULL,
    instance_number INTEGER,
    frames INTEGER NOT NULL DEFAULT 1,
    rows INTEGER,
    columns INTEGER,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    received_at REAL NOT NULL,
    source_ae TEXT NOT NULL DEFAULT '',
    patient_name TEXT NOT NULL DEFAULT '',
    patient_id TEXT NOT NULL DEFAULT '',
    issuer TEXT NOT NULL DEFAULT '',
    birth_date TEXT NOT NULL DEFAULT '',
    sex TEXT NOT NULL DEFAULT '',
    charset TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS instance_series ON instance(series_uid);
CREATE INDEX IF NOT EXISTS instance_study ON instance(study_uid);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open the index; raises IndexCorruptError when the file is damaged.

    Each connection is used by one thread only (`IndexConnections`); Python's
    same-thread check is off so that `close_all` can close the others' too.
    """
    try:
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=OFF")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            conn.executescript(SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise IndexCorruptError(
                f"the index was written by a newer gearview (schema {version})",
                hint="upgrade gearview, or run `gearview store rebuild`",
            )
        return conn
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"the index {path.name} cannot be opened: {exc}") from None


class _ThreadConnection:
    """A thread's connection, closed as soon as that thread's local storage is released."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.close = weakref.finalize(self, conn.close)


class IndexConnections:
    """One connection per thread (SQLite connections are not thread-safe).

    A connection lives in its thread's `threading.local` and is closed when
    that storage goes away: when a Python thread ends, and when a thread
    Python did not start (a Qt pool thread) drops its Python thread state
    after each task, which gives every GUI worker task a fresh local. Only
    weak references are kept besides, so no connection outlives the thread
    that opened it (strong ones leaked two descriptors per GUI refresh until
    `select()` failed past 1024).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._open: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self._lock = threading.Lock()

    def get(self) -> sqlite3.Connection:
        held = getattr(self._local, "held", None)
        if held is None:
            held = _ThreadConnection(connect(self.path))
            self._local.held = held
            with self._lock:
                self._open.add(held)
        return held.conn

    def open_count(self) -> int:
        """Connections currently open (one per thread that used the index and still runs)."""
        with self._lock:
            return sum(1 for held in self._open if held.close.alive)

    def close_current(self) -> None:
        held = getattr(self._local, "held", None)
        if held is not None:
            self._local.held = None
            held.close()

    def close_all(self) -> None:
        """Close every connection (only safe once no other thread uses them)."""
        with self._lock:
            held, self._open = list(self._open), weakref.WeakSet()
        for item in held:
            item.close()
        self._local = threading.local()


def _patient_pk(conn: sqlite3.Connection, info: InstanceInfo) -> int:
    key = (info.patient_id, info.issuer_of_patient_id, info.patient_name, info.birth_date)
    row = conn.execute(
        "SELECT pk FROM patient WHERE patient_id=? AND issuer=? AND patient_name=? AND birth_date=?",
        key,
    ).fetchone()
    if row:
        conn.execute("UPDATE patient SET sex=? WHERE pk=?", (info.sex, row[0]))
        return int(row[0])
    cur = conn.execute(
        "INSERT INTO patient(patient_id, issuer, patient_name, birth_date, sex) VALUES (?,?,?,?,?)",
        key + (info.sex,),
    )
    return int(cur.lastrowid)


def upsert_instance(conn: sqlite3.Connection, info: InstanceInfo, relpath: str, size: int,
                    source_ae: str, received_at: float | None = None) -> tuple[bool, dict | None]:
    """Insert or replace one instance row and its parents inside the caller's transaction.

    Returns (study_was_new, previous_instance_row_or_None).
    """
    now = time.time() if received_at is None else received_at
    previous = conn.execute("SELECT * FROM instance WHERE sop_uid=?", (info.sop_instance_uid,)).fetchone()
    study_new = conn.execute(
        "SELECT 1 FROM study WHERE study_uid=?", (info.study_instance_uid,)
    ).fetchone() is None
    patient_pk = _patient_pk(conn, info)
    conn.execute(
        """INSERT INTO study(study_uid, patient_pk, study_date, study_time, accession, study_id,
               description, referring_physician, institution, updated_at)
           VALUES (?,?,?,?,?,?,?,?,?,?)
           ON CONFLICT(study_uid) DO UPDATE SET patient_pk=excluded.patient_pk,
               study_date=excluded.study_date, study_time=excluded.study_time,
               accession=excluded.accession, study_id=excluded.study_id,
               description=excluded.description, referring_physician=excluded.referring_physician,
               institution=excluded.institution, updated_at=excluded.updated_at""",
        (info.study_instance_uid, patient_pk, info.study_date, info.study_time, info.accession,
         info.study_id, info.study_description, info.referring_physician, info.institution, now),
    )
    conn.execute(
        """INSERT INTO series(series_uid, study_uid, modality, number, description, body_part)
           VALUES (?,?,?,?,?,?)
           ON CONFLICT(series_uid) DO UPDATE SET study_uid=excluded.study_uid,
               modality=excluded.modality, number=excluded.number,
               description=excluded.description, body_part=excluded.body_part""",
        (info.series_instance_uid, info.study_instance_uid, info.modality, info.series_number,
         info.series_description, info.body_part),
    )
    conn.execute(
        """INSERT OR REPLACE INTO instance(sop_uid, series_uid, study_uid, sop_class, transfer_syntax,
               instance_number, frames, rows, columns, path, size, received_at, source_ae,
               patient_name, patient_id, issuer, birth_date, sex, charset)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
        (info.sop_instance_uid, info.series_instance_uid, info.study_instance_uid,
         info.sop_class_uid, info.transfer_syntax_uid, info.instance_number, info.frames,
         info.rows, info.columns, relpath, size, now, source_ae, info.patient_name,
         info.patient_id, info.issuer_of_patient_id, info.birth_date, info.sex, info.charset),
    )
    if previous is not None:
        prune_empty(conn, previous["series_uid"], previous["study_uid"])
    return study_new, dict(previous) if previous is not None else None


def prune_empty(conn: sqlite3.Connection, series_uid: str, study_uid: str) -> list[str]:
    """Drop a series/study/patient left without instances; returns the levels removed."""
    removed = []
    if conn.execute("SELECT 1 FROM instance WHERE series_uid=? LIMIT 1", (series_uid,)).fetchone() is None:
        conn.execute("DELETE FROM series WHERE series_uid=?", (series_uid,))
        removed.append("series")
    if conn.execute("SELECT 1 FROM series WHERE study_uid=? LIMIT 1", (study_uid,)).fetchone() is None:
        conn.execute("DELETE FROM study WHERE study_uid=?", (study_uid,))
        removed.append("study")
    conn.execute("DELETE FROM patient WHERE pk NOT IN (SELECT patient_pk FROM study)")
    return removed


class Transaction:
    """`with Transaction(conn):` BEGIN IMMEDIATE … COMMIT, rolled back on error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"the index is busy: {exc}", hint="another program holds the index; try again") from None
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return
            except sqlite3.DatabaseError as err:
                self.conn.execute("ROLLBACK")
                raise StoreError(f"could not update the index: {err}") from None
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.DatabaseError:
            pass


STUDY_QUERY = """
SELECT s.study_uid, p.patient_name, p.patient_id, p.issuer AS issuer_of_patient_id,
       p.birth_date, p.sex, s.study_date, s.study_time, s.accession, s.study_id,
       s.description, s.referring_physician, s.institution, s.updated_at,
       (SELECT group_concat(m, '\\') FROM (SELECT DISTINCT modality AS m FROM series
            WHERE series.study_uid = s.study_uid AND modality != '' ORDER BY modality)) AS modalities,
       (SELECT count(*) FROM series WHERE series.study_uid = s.study_uid) AS series_count,
       (SELECT count(*) FROM instance WHERE instance.study_uid = s.study_uid) AS instance_count,
       (SELECT count(*) > 1 FROM (SELECT DISTINCT patient_name, patient_id, birth_date, sex
            FROM instance WHERE instance.study_uid = s.study_uid)) AS mismatch
FROM study s JOIN patient p ON p.pk = s.patient_pk
"""
