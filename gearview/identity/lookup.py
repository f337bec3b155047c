"""Finding the local patient for an outside one: cache, PACS (`query` nodes) and worklist.

Candidates match on the name (fuzzy: order, case, diacritics), the birth date
(exact) and the sex (a difference lowers the rank and is named). Each one says
where it was found and why it matches. A node that is down is reported beside
the candidates, never instead of them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from gearview.config import Config, Node
from gearview.display import format_date, format_person_name
from gearview.errors import Cancelled, GearviewError, NetworkError
from gearview.identity.names import compare_names, fold_name
from gearview.jobs import CancelToken
from gearview.net.client import find_on_nodes
from gearview.net.query import StudyQuery
from gearview.net.worklist import WorklistItem, WorklistQuery, find_worklist

log = logging.getLogger(__name__)

CACHE = "cache"
#: A candidate whose sex differs keeps this share of its score.
SEX_PENALTY = 0.5
#: A candidate without a birth date to compare keeps this share.
NO_DATE_PENALTY = 0.7
KNOWN_SEXES = ("M", "F")


@dataclass(frozen=True)
class PatientIdentity:
    """Who a patient is, as one system records it."""

    patient_id: str
    issuer: str = ""
    name: str = ""
    birth_date: str = ""
    sex: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return (self.patient_id, self.issuer)


@dataclass
class Candidate:
    """A possible local record for an outside patient, ranked by `score` (0-1)."""

    identity: PatientIdentity
    source: str
    score: float
    reasons: list[str] = field(default_factory=list)
    order: WorklistItem | None = None
    studies: int = 0

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def label(self) -> str:
        """One line for a list: who, from where, why."""
        who = self.identity
        order = f", order {self.order.accession}" if self.order else ""
        return (
            f"{format_person_name(who.name)} ({who.patient_id}"
            f"{'@' + who.issuer if who.issuer else ''}) "
            f"{format_date(who.birth_date)} {who.sex} — {self.source}{order}: {self.reason}"
        )


@dataclass
class LookupResult:
    candidates: list[Candidate] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def score(outside: PatientIdentity, local: PatientIdentity) -> tuple[float, list[str]] | None:
    """How well `local` fits `outside`, with the reasons; None when it does not fit."""
    if outside.birth_date and local.birth_date and outside.birth_date != local.birth_date:
        return None
    name = compare_names(outside.name, local.name)
    if name is None:
        return None
    value, reasons = name.score, [name.reason]
    if outside.birth_date and local.birth_date:
        reasons.append("same birth date")
    else:
        value *= NO_DATE_PENALTY
        reasons.append("no birth date to compare")
    if outside.sex in KNOWN_SEXES and local.sex in KNOWN_SEXES and outside.sex != local.sex:
        value *= SEX_PENALTY
        reasons.append(f"sex differs (outside {outside.sex}, here {local.sex})")
    if local.key == outside.key:
        reasons.append("same patient ID as the outside record")
    return value, reasons


def _candidate(
    outside: PatientIdentity,
    local: PatientIdentity,
    source: str,
    studies: int = 0,
    order: WorklistItem | None = None,
) -> Candidate | None:
    fit = score(outside, local)
    if fit is None:
        return None
    return Candidate(local, source, fit[0], fit[1], order=order, studies=studies)


def from_cache(conn: sqlite3.Connection, outside: PatientIdentity) -> list[Candidate]:
    """Patients of the local cache (exact birth date in SQL, the name compared here)."""
    sql = """SELECT p.patient_id, p.issuer_of_patient_id, p.patient_name,
                    p.patient_birth_date, p.patient_sex, count(s.study_instance_uid) AS studies
             FROM patient p LEFT JOIN study s ON s.patient_pk = p.pk"""
    params: tuple[str, ...] = ()
    if outside.birth_date:
        sql += " WHERE p.patient_birth_date IN (?, '')"
        params = (outside.birth_date,)
    sql += " GROUP BY p.pk"
    found = []
    for row in conn.execute(sql, params):
        local = PatientIdentity(
            row["patient_id"], row["issuer_of_patient_id"], row["patient_name"],
            row["patient_birth_date"], row["patient_sex"],
        )
        candidate = _candidate(outside, local, CACHE, studies=row["studies"])
        if candidate is not None:
            found.append(candidate)
    return found


def _matching_keys(outside: PatientIdentity, birth_date: str) -> dict[str, str]:
    """What to ask a peer: the exact birth date (the query's `birth_date` field), else a
    wildcard on the family name."""
    if outside.birth_date:
        return {birth_date: outside.birth_date}
    family = str(outside.name).split("=")[0].split("^")[0].strip()
    return {"patient_name": f"{family}*"} if family else {}


def from_query_nodes(
    nodes: Sequence[Node], config: Config, outside: PatientIdentity, token: CancelToken | None
) -> LookupResult:
    """Study Root C-FIND at STUDY level (patient keys), one candidate per patient and node set."""
    result = LookupResult()
    keys = _matching_keys(outside, "patient_birth_date")
    if not nodes or not keys:
        return result
    found = find_on_nodes(nodes, config, StudyQuery(**keys), token)
    result.errors.update(found.errors)
    patients: dict[PatientIdentity, tuple[set[str], int]] = {}
    for study in found.studies:
        local = PatientIdentity(
            study.patient_id,
            study.issuer_of_patient_id,
            study.patient_name,
            study.patient_birth_date,
            study.patient_sex,
        )
        sources, count = patients.get(local, (set(), 0))
        patients[local] = (sources | set(study.sources), count + 1)
    for local, (sources, count) in patients.items():
        candidate = _candidate(outside, local, ", ".join(sorted(sources)), studies=count)
        if candidate is not None:
            result.candidates.append(candidate)
    return result


def from_worklist(
    nodes: Sequence[Node], config: Config, outside: PatientIdentity, token: CancelToken | None
) -> LookupResult:
    """Orders scheduled for a patient like this one (each order is its own candidate)."""
    result = LookupResult()
    keys = _matching_keys(outside, "birth_date")
    if not keys:
        return result
    query = WorklistQuery(**keys)
    for node in nodes:
        try:
            items = find_worklist(node, config, query, token)
        except Cancelled:
            raise
        except GearviewError as exc:
            result.errors[node.name] = exc.one_line()
            continue
        for item in items:
            candidate = order_candidate(item, outside)
            if candidate is not None:
                result.candidates.append(candidate)
    return result


def order_identity(item: WorklistItem) -> PatientIdentity:
    return PatientIdentity(
        item.patient_id, item.issuer_of_patient_id, item.patient_name, item.birth_date, item.sex
    )


def order_candidate(item: WorklistItem, outside: PatientIdentity | None = None) -> Candidate | None:
    """An order as a candidate; without an outside patient it is simply the user's pick."""
    local = order_identity(item)
    source = f"worklist {item.source}".strip()
    if outside is None:
        return Candidate(local, source, 1.0, ["the order chosen"], order=item)
    return _candidate(outside, local, source, order=item)


def rank(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Best first; the same patient found in several places keeps its best entry per source."""
    best: dict[tuple[str, str, str, str], Candidate] = {}
    for candidate in candidates:
        order = candidate.order.accession if candidate.order else ""
        key = (*candidate.identity.key, candidate.source, order)
        if key not in best or candidate.score > best[key].score:
            best[key] = candidate
    return sorted(
        best.values(),
        key=lambda c: (-c.score, c.order is None, c.source != CACHE, c.identity.patient_id),
    )


def find_candidates(
    outside: PatientIdentity,
    conn: sqlite3.Connection | None,
    config: Config,
    query_nodes: Sequence[Node] = (),
    worklist_nodes: Sequence[Node] = (),
    token: CancelToken | None = None,
) -> LookupResult:
    """Every candidate for `outside`, ranked; unreachable nodes in `errors`."""
    result = LookupResult()
    if fold_name(outside.name).empty and not outside.birth_date:
        return result
    candidates: list[Candidate] = []
    if conn is not None:
        candidates.extend(from_cache(conn, outside))
    for found in (
        from_query_nodes(query_nodes, config, outside, token),
        from_worklist(worklist_nodes, config, outside, token),
    ):
        candidates.extend(found.candidates)
        result.errors.update(found.errors)
    result.candidates = rank(candidates)
    return result


def find_by_id(
    conn: sqlite3.Connection | None,
    patient_id: str,
    issuer: str,
    config: Config,
    query_nodes: Sequence[Node] = (),
    token: CancelToken | None = None,
) -> tuple[PatientIdentity | None, str, list[str]]:
    """The local record of a Patient ID: (identity, where found, warnings).

    The cache is asked first, then the `query` nodes. Several disagreeing
    records (a data problem to fix) are named in the warnings; the one seen
    most recently in the cache wins.
    """
    warnings: list[str] = []
    if conn is not None:
        rows = conn.execute(
            """SELECT p.patient_name, p.patient_birth_date, p.patient_sex,
                      max(s.updated_at) AS seen
               FROM patient p LEFT JOIN study s ON s.patient_pk = p.pk
               WHERE p.patient_id = ? AND p.issuer_of_patient_id = ?
               GROUP BY p.pk ORDER BY seen DESC""",
            (patient_id, issuer),
        ).fetchall()
        if rows:
            if len(rows) > 1:
                warnings.append(
                    f"the cache holds {len(rows)} different records for patient ID "
                    f"{patient_id!r}; the most recent one is used"
                )
            row = rows[0]
            identity = PatientIdentity(
                patient_id, issuer, row["patient_name"], row["patient_birth_date"],
                row["patient_sex"]
            )
            return identity, CACHE, warnings
    if not query_nodes:
        return None, "", warnings
    try:
        found = find_on_nodes(query_nodes, config, StudyQuery(patient_id=patient_id), token)
    except NetworkError as exc:
        return None, "", [*warnings, exc.one_line()]
    warnings.extend(f"{name}: {error}" for name, error in found.errors.items())
    records = {
        PatientIdentity(patient_id, s.issuer_of_patient_id, s.patient_name, s.patient_birth_date,
                        s.patient_sex)
        for s in found.studies
        if s.patient_id == patient_id and s.issuer_of_patient_id in (issuer, "")
    }
    if not records:
        return None, "", warnings
    if len(records) > 1:
        warnings.append(
            f"the PACS holds {len(records)} different records for patient ID {patient_id!r}"
        )
    best = sorted(records, key=lambda r: (r.issuer != issuer, r.name))[0]
    sources = {src for s in found.studies if s.patient_id == patient_id for src in s.sources}
    identity = PatientIdentity(patient_id, issuer, best.name, best.birth_date, best.sex)
    return identity, ", ".join(sorted(sources)), warnings
