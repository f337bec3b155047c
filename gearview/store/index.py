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
from gearview.store.attributes import (
    IMAGE,
    PATIENT,
    SERIES,
    STUDY,
    TABLE,
    UNIQUE,
    Attribute,
    at_level,
    attribute,
    columns,
)
from gearview.store.records import InstanceInfo

SCHEMA_VERSION = 3
BUSY_TIMEOUT_MS = 10_000
#: The demographics that tell two patient rows apart.
PATIENT_KEY = tuple(
    attribute(kw) for kw in ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")
)


def _column(attr: Attribute) -> str:
    if not attr.is_int:
        return f"{attr.column} TEXT NOT NULL DEFAULT ''"
    if attr.default is not None:
        return f"{attr.column} INTEGER NOT NULL DEFAULT {attr.default}"
    return f"{attr.column} INTEGER"


def _table(level: str, head: list[str], tail: list[str], key_in_head: bool = True) -> str:
    keys = {UNIQUE[level]} if level in UNIQUE and key_in_head else set()
    body = [_column(a) for a in columns(level) if a not in keys]
    return f"CREATE TABLE IF NOT EXISTS {TABLE[level]} (\n    " + ",\n    ".join(
        head + body + tail) + "\n);"


def _schema() -> str:
    """The current schema, columns from the vocabulary (`store/attributes.py`)."""
    study, series, sop = (UNIQUE[level].column for level in (STUDY, SERIES, IMAGE))
    return "\n".join((
        _table(PATIENT, ["pk INTEGER PRIMARY KEY"],
               [f"UNIQUE ({', '.join(a.column for a in PATIENT_KEY)})"]),
        _table(STUDY, [f"{study} TEXT PRIMARY KEY",
                       "patient_pk INTEGER NOT NULL REFERENCES patient(pk)"],
               ["updated_at REAL NOT NULL"]),
        "CREATE INDEX IF NOT EXISTS study_patient ON study(patient_pk);",
        "CREATE INDEX IF NOT EXISTS study_date ON study(study_date);",
        # a Series Instance UID reused by two studies is two series (SPEC §2.10)
        _table(SERIES, [], [f"PRIMARY KEY ({study}, {series})"], key_in_head=False),
        f"CREATE INDEX IF NOT EXISTS series_study ON series({study});",
        _table(IMAGE, [f"{sop} TEXT PRIMARY KEY"],
               ["path TEXT NOT NULL UNIQUE", "size INTEGER NOT NULL", "received_at REAL NOT NULL",
                "source_ae TEXT NOT NULL DEFAULT ''"]),
        f"CREATE INDEX IF NOT EXISTS instance_series ON instance({series});",
        f"CREATE INDEX IF NOT EXISTS instance_study ON instance({study});",
    ))


SCHEMA = _schema()

_V2_SERIES = ("study_instance_uid, series_instance_uid, series_number, modality, "
              "series_description, body_part_examined")
#: Schema version -> the statements that bring an index of that version to the next one.
#: An index a migration cannot handle is recreated from the files by `gearview store rebuild`.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 1 -> 2: columns named after pydicom keywords (`store/attributes.py`)
    1: tuple(
        f"ALTER TABLE {table} RENAME COLUMN {old} TO {new}"
        for table, renames in (
            ("patient", {"issuer": "issuer_of_patient_id", "birth_date": "patient_birth_date",
                         "sex": "patient_sex"}),
            ("study", {"study_uid": "study_instance_uid", "accession": "accession_number",
                       "description": "study_description",
                       "referring_physician": "referring_physician_name",
                       "institution": "institution_name"}),
            ("series", {"series_uid": "series_instance_uid", "study_uid": "study_instance_uid",
                        "number": "series_number", "description": "series_description",
                        "body_part": "body_part_examined"}),
            ("instance", {"sop_uid": "sop_instance_uid", "series_uid": "series_instance_uid",
                          "study_uid": "study_instance_uid", "sop_class": "sop_class_uid",
                          "transfer_syntax": "transfer_syntax_uid", "frames": "number_of_frames",
                          "issuer": "issuer_of_patient_id", "birth_date": "patient_birth_date",
                          "sex": "patient_sex", "charset": "specific_character_set"}),
        )
        for old, new in renames.items()
    ),
    # 2 -> 3: a series is keyed by its study too; instances whose series row another study
    # had taken get theirs back (their other values from that row)
    2: (
        "ALTER TABLE series RENAME TO series_v2",
        "CREATE TABLE series (study_instance_uid TEXT NOT NULL DEFAULT '', "
        "series_instance_uid TEXT NOT NULL DEFAULT '', series_number INTEGER, "
        "modality TEXT NOT NULL DEFAULT '', series_description TEXT NOT NULL DEFAULT '', "
        "body_part_examined TEXT NOT NULL DEFAULT '', "
        "PRIMARY KEY (study_instance_uid, series_instance_uid))",
        f"INSERT INTO series({_V2_SERIES}) SELECT {_V2_SERIES} FROM series_v2",
        f"INSERT OR IGNORE INTO series({_V2_SERIES}) SELECT DISTINCT i.study_instance_uid, "
        "se.series_instance_uid, se.series_number, se.modality, se.series_description, "
        "se.body_part_examined FROM instance i JOIN series_v2 se "
        "ON se.series_instance_uid = i.series_instance_uid",
        "DROP TABLE series_v2",
        "CREATE INDEX IF NOT EXISTS series_study ON series(study_instance_uid)",
    ),
}


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older index up to SCHEMA_VERSION in one transaction (once, whoever comes first)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        while version < SCHEMA_VERSION:
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            version += 1
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


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
        elif version < SCHEMA_VERSION:
            _migrate(conn)
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


def _values(info: InstanceInfo, attrs: tuple[Attribute, ...]) -> tuple[object, ...]:
    return tuple(getattr(info, a.field) for a in attrs)


def _upsert_sql(table: str, names: list[str], keys: tuple[str, ...]) -> str:
    updates = ", ".join(f"{n}=excluded.{n}" for n in names if n not in keys)
    return (f"INSERT INTO {table}({', '.join(names)}) VALUES ({','.join('?' * len(names))}) "
            f"ON CONFLICT({', '.join(keys)}) DO UPDATE SET {updates}")


_PATIENT_FIND = "SELECT pk FROM patient WHERE " + " AND ".join(f"{a.column}=?" for a in PATIENT_KEY)
_PATIENT_OTHERS = tuple(a for a in columns(PATIENT) if a not in PATIENT_KEY)
_PATIENT_UPDATE = (f"UPDATE patient SET {', '.join(f'{a.column}=?' for a in _PATIENT_OTHERS)} "
                   "WHERE pk=?")
_PATIENT_INSERT = (
    f"INSERT INTO patient({', '.join(a.column for a in PATIENT_KEY + _PATIENT_OTHERS)}) "
    f"VALUES ({','.join('?' * (len(PATIENT_KEY) + len(_PATIENT_OTHERS)))})"
)
_STUDY_COLUMNS = columns(STUDY)
_STUDY_UPSERT = _upsert_sql(
    "study", [a.column for a in _STUDY_COLUMNS] + ["patient_pk", "updated_at"],
    (UNIQUE[STUDY].column,))
_SERIES_COLUMNS = columns(SERIES)
_SERIES_UPSERT = _upsert_sql("series", [a.column for a in _SERIES_COLUMNS],
                             (UNIQUE[STUDY].column, UNIQUE[SERIES].column))
_INSTANCE_COLUMNS = columns(IMAGE)
_INSTANCE_NAMES = [a.column for a in _INSTANCE_COLUMNS] + ["path", "size", "received_at",
                                                            "source_ae"]
_INSTANCE_REPLACE = (f"INSERT OR REPLACE INTO instance({', '.join(_INSTANCE_NAMES)}) "
                     f"VALUES ({','.join('?' * len(_INSTANCE_NAMES))})")
_SOP, _STUDY, _SERIES = (UNIQUE[level].column for level in (IMAGE, STUDY, SERIES))


def _patient_pk(conn: sqlite3.Connection, info: InstanceInfo) -> int:
    key = _values(info, PATIENT_KEY)
    others = _values(info, _PATIENT_OTHERS)
    row = conn.execute(_PATIENT_FIND, key).fetchone()
    if row:
        conn.execute(_PATIENT_UPDATE, others + (row[0],))
        return int(row[0])
    return int(conn.execute(_PATIENT_INSERT, key + others).lastrowid)


def upsert_instance(conn: sqlite3.Connection, info: InstanceInfo, relpath: str, size: int,
                    source_ae: str, received_at: float | None = None) -> tuple[bool, dict | None]:
    """Insert or replace one instance row and its parents inside the caller's transaction.

    Returns (study_was_new, previous_instance_row_or_None).
    """
    now = time.time() if received_at is None else received_at
    previous = conn.execute(f"SELECT * FROM instance WHERE {_SOP}=?",
                            (info.sop_instance_uid,)).fetchone()
    study_new = conn.execute(f"SELECT 1 FROM study WHERE {_STUDY}=?",
                             (info.study_instance_uid,)).fetchone() is None
    patient_pk = _patient_pk(conn, info)
    conn.execute(_STUDY_UPSERT, _values(info, _STUDY_COLUMNS) + (patient_pk, now))
    conn.execute(_SERIES_UPSERT, _values(info, _SERIES_COLUMNS))
    conn.execute(_INSTANCE_REPLACE,
                 _values(info, _INSTANCE_COLUMNS) + (relpath, size, now, source_ae))
    if previous is not None:
        prune_empty(conn, previous[_SERIES], previous[_STUDY])
    return study_new, dict(previous) if previous is not None else None


def prune_empty(conn: sqlite3.Connection, series_uid: str, study_uid: str) -> list[str]:
    """Drop a series/study/patient left without instances; returns the levels removed."""
    removed = []
    key = (study_uid, series_uid)
    if conn.execute(f"SELECT 1 FROM instance WHERE {_STUDY}=? AND {_SERIES}=? LIMIT 1",
                    key).fetchone() is None:
        conn.execute(f"DELETE FROM series WHERE {_STUDY}=? AND {_SERIES}=?", key)
        removed.append("series")
    if conn.execute(f"SELECT 1 FROM series WHERE {_STUDY}=? LIMIT 1",
                    (study_uid,)).fetchone() is None:
        conn.execute(f"DELETE FROM study WHERE {_STUDY}=?", (study_uid,))
        removed.append("study")
    conn.execute("DELETE FROM patient WHERE pk NOT IN (SELECT patient_pk FROM study)")
    return removed


def delete_instance(conn: sqlite3.Connection, sop_uid: str, path: str) -> tuple[str, str] | None:
    """Delete an instance row that still points at `path`; returns its (series, study) UIDs."""
    row = conn.execute(f"SELECT {_SERIES}, {_STUDY} FROM instance WHERE {_SOP}=? AND path=?",
                       (sop_uid, path)).fetchone()
    if row is None:
        return None
    conn.execute(f"DELETE FROM instance WHERE {_SOP}=?", (sop_uid,))
    return row[0], row[1]


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


def select_list(attrs: tuple[Attribute, ...], table: str | None = None) -> str:
    """`expr AS field` for each attribute (the records' `from_row` reads fields by name).

    With `table` (a level), stored attributes are read from that level's table alone.
    """
    return ", ".join(f"{a.expr(None if a.computed else table)} AS {a.field}" for a in attrs)


_IDENTITY = ", ".join(a.column for a in columns(IMAGE) if a.per_instance)
#: Every study with its patient; a study whose instances disagree on the patient is a mismatch.
STUDY_QUERY = f"""
SELECT {select_list(at_level(PATIENT) + at_level(STUDY))}, s.updated_at,
       (SELECT count(*) > 1 FROM (SELECT DISTINCT {_IDENTITY} FROM instance x
            WHERE x.{_STUDY} = s.{_STUDY})) AS mismatch
FROM study s JOIN patient p ON p.pk = s.patient_pk
"""
