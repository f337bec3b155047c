"""Pre-send safety checks (SPEC §2.10 "Nothing wrong leaves"): what blocks a send or a burn.

- `mixed-patient`: the study's instances disagree on Patient ID, Issuer,
  Name, Birth Date or Sex.
- `foreign-instance`: an instance whose patient differs from the rest of its
  series.
- `series-in-several-studies`: a Series Instance UID of the study is also used
  by another study.
- `duplicate-sop-uid`: an arrival carried a SOP Instance UID the cache holds as
  another instance (another study, patient or image) and was kept aside or
  refused (`store/intake.py`).
- `correction-not-applied`: an instance of the edited study was stored without
  the correction (`[qc] reapply_corrections = false`) and the study has not
  been edited since.

Each finding names the values that disagree and how many instances carry
each; `instances` is how many of the study's instances it concerns. Every
check is one query over all the studies asked about.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_description

from gearview.errors import GearviewError, InvalidValueError, NotFoundError
from gearview.store import Cache, audit
from gearview.store.attributes import IMAGE, columns
from gearview.store.ledger import NOT_CORRECTED, Conflict

MIXED_PATIENT = "mixed-patient"
FOREIGN_INSTANCE = "foreign-instance"
SERIES_IN_SEVERAL_STUDIES = "series-in-several-studies"
DUPLICATE_SOP_UID = "duplicate-sop-uid"
CORRECTION_NOT_APPLIED = "correction-not-applied"
CODES = (MIXED_PATIENT, FOREIGN_INSTANCE, SERIES_IN_SEVERAL_STUDIES, DUPLICATE_SOP_UID,
         CORRECTION_NOT_APPLIED)
#: The patient identity every instance carries (the vocabulary's per-instance attributes).
IDENTITY = tuple(a for a in columns(IMAGE) if a.per_instance)
#: Conflicts listed in one finding's message before "and N more".
LISTED = 3


@dataclass(frozen=True)
class Finding:
    """One reason not to send a study as it is."""

    study_uid: str
    code: str
    message: str
    instances: int

    def to_json(self) -> dict[str, Any]:
        """The SPEC §3 `check --json` shape."""
        return {"study_uid": self.study_uid, "code": self.code, "message": self.message,
                "instances": self.instances}


def _label(keyword: str) -> str:
    return dictionary_description(keyword)


def _plural(n: int, word: str = "instance") -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _values(counts: Counter[str]) -> str:
    return ", ".join(f"{value!r} ({_plural(n)})" for value, n in counts.most_common())


def _in(study_uids: list[str]) -> tuple[str, tuple[str]]:
    return "(SELECT value FROM json_each(?))", (json.dumps(study_uids),)


def _mixed_patient(cache: Cache, uids: list[str]) -> Iterable[Finding]:
    names = ", ".join(a.column for a in IDENTITY)
    where, params = _in(uids)
    rows = cache.conn.execute(
        f"SELECT study_instance_uid, {names}, count(*) AS n FROM instance "
        f"WHERE study_instance_uid IN {where} GROUP BY study_instance_uid, {names}", params)
    groups: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        groups[row["study_instance_uid"]].append(row)
    for study, found in groups.items():
        if len(found) < 2:
            continue
        parts = []
        for attr in IDENTITY:
            counts: Counter[str] = Counter()
            for row in found:
                counts[row[attr.column]] += row["n"]
            if len(counts) > 1:
                parts.append(f"{_label(attr.keyword)} {_values(counts)}")
        total = sum(row["n"] for row in found)
        largest = max(row["n"] for row in found)
        yield Finding(study, MIXED_PATIENT,
                      "instances disagree on the patient: " + "; ".join(parts), total - largest)


def _foreign_instances(cache: Cache, uids: list[str]) -> Iterable[Finding]:
    names = ", ".join(f"i.{a.column}" for a in IDENTITY)
    where, params = _in(uids)
    rows = cache.conn.execute(
        f"SELECT i.study_instance_uid, i.series_instance_uid, se.series_number, se.modality, "
        f"{names}, count(*) AS n FROM instance i JOIN series se "
        "ON se.series_instance_uid = i.series_instance_uid "
        "AND se.study_instance_uid = i.study_instance_uid "
        f"WHERE i.study_instance_uid IN {where} "
        f"GROUP BY i.study_instance_uid, i.series_instance_uid, {names}", params)
    series: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        series[(row["study_instance_uid"], row["series_instance_uid"])].append(row)
    for (study, _), found in series.items():
        if len(found) < 2:
            continue
        found.sort(key=lambda r: r["n"], reverse=True)
        main, others = found[0], found[1:]
        who = ", ".join(f"{_plural(r['n'])} with {_differing(r, main)}" for r in others)
        number = main["series_number"]
        label = f"series {number if number is not None else '?'} ({main['modality'] or '?'})"
        yield Finding(study, FOREIGN_INSTANCE,
                      f"{label}: {who} among {_plural(main['n'])} of {_who(main)}",
                      sum(r["n"] for r in others))


def _who(row: Any) -> str:
    return f"patient ID {row['patient_id']!r} ({row['patient_name']!r})"


def _differing(row: Any, main: Any) -> str:
    """The patient values in which a group of instances differs from the series' main one."""
    return ", ".join(f"{_label(a.keyword)} {row[a.column]!r}" for a in IDENTITY
                     if row[a.column] != main[a.column])


def _shared_series(cache: Cache, uids: list[str]) -> Iterable[Finding]:
    where, params = _in(uids)
    rows = cache.conn.execute(
        "SELECT se.study_instance_uid AS study, se.series_instance_uid AS series, "
        "o.study_instance_uid AS other, (SELECT x.patient_id FROM instance x "
        "WHERE x.study_instance_uid = o.study_instance_uid GROUP BY x.patient_id "
        "ORDER BY count(*) DESC LIMIT 1) AS other_patient, "
        "(SELECT count(*) FROM instance x WHERE x.study_instance_uid = se.study_instance_uid "
        "AND x.series_instance_uid = se.series_instance_uid) AS n "
        "FROM series se JOIN series o ON o.series_instance_uid = se.series_instance_uid "
        "AND o.study_instance_uid != se.study_instance_uid "
        f"WHERE se.study_instance_uid IN {where} ORDER BY se.series_instance_uid", params)
    shared: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        entry = shared[row["study"]].setdefault(row["series"], {"n": row["n"], "others": []})
        entry["others"].append(f"{row['other']} (patient ID {row['other_patient']!r})")
    for study, by_series in shared.items():
        parts = [f"Series Instance UID {uid} ({_plural(e['n'])}) is also used by study "
                 + ", ".join(e["others"]) for uid, e in by_series.items()]
        yield Finding(study, SERIES_IN_SEVERAL_STUDIES, "; ".join(parts),
                      sum(e["n"] for e in by_series.values()))


def _open(conflict: Conflict, study: str, existing: set[str], files_dir: Any,
          last_edit: float | None) -> bool:
    """Whether a recorded conflict still stands for `study`."""
    if conflict.kind == NOT_CORRECTED:
        return last_edit is None or conflict.time > last_edit
    if conflict.kept:  # kept aside at this station until someone resolves it
        return (files_dir / conflict.kept).exists()
    # refused at import: the study it was meant for lacks it
    return study == conflict.study_uid and study in existing


def _recorded(cache: Cache, uids: list[str], existing: set[str]) -> Iterable[Finding]:
    edits = cache.ledger.last_edits(uids)
    for study, conflicts in cache.ledger.conflicts(uids).items():
        standing = [c for c in conflicts
                    if _open(c, study, existing, cache.files_dir, edits.get(study))]
        flags = [c for c in standing if c.kind == NOT_CORRECTED]
        duplicates = [c for c in standing if c.kind != NOT_CORRECTED]
        if flags:
            sops = {c.sop_uid for c in flags}
            yield Finding(study, CORRECTION_NOT_APPLIED,
                          f"{_plural(len(sops))} stored without this study's correction "
                          "([qc] reapply_corrections is off); edit the study again",
                          len(sops))
        if duplicates:
            text = "; ".join(c.describe() for c in duplicates[:LISTED])
            if len(duplicates) > LISTED:
                text += f"; and {len(duplicates) - LISTED} more"
            yield Finding(study, DUPLICATE_SOP_UID, text, len({c.sop_uid for c in duplicates}))


def findings_by_study(cache: Cache, study_uids: Iterable[str]) -> dict[str, list[Finding]]:
    """Every finding of these studies (studies without findings are left out)."""
    uids = list(dict.fromkeys(study_uids))
    existing = {s.study_instance_uid for s in cache.studies_by_uid(uids)}
    found: dict[str, list[Finding]] = defaultdict(list)
    checks = (_mixed_patient(cache, uids), _foreign_instances(cache, uids),
              _shared_series(cache, uids), _recorded(cache, uids, existing))
    for check in checks:
        for finding in check:
            found[finding.study_uid].append(finding)
    order = {code: n for n, code in enumerate(CODES)}
    return {uid: sorted(f, key=lambda x: order[x.code]) for uid, f in found.items()}


def check_studies(cache: Cache, study_uids: Iterable[str]) -> list[Finding]:
    """The findings of each study, in the order given; unknown studies are refused."""
    uids = list(dict.fromkeys(study_uids))
    known = {s.study_instance_uid for s in cache.studies_by_uid(uids)}
    missing = [uid for uid in uids if uid not in known]
    if missing:
        raise NotFoundError(f"no study {missing[0]} in the local cache",
                            hint="`gearview ls` lists the studies")
    found = findings_by_study(cache, uids)
    return [finding for uid in uids for finding in found.get(uid, [])]


@dataclass(frozen=True)
class InstanceIdentity:
    """One instance's patient values, for the view of what disagrees."""

    sop_uid: str
    series_number: int | None
    modality: str
    instance_number: int | None
    values: dict[str, str]


def disagreements(cache: Cache, study_uid: str) -> tuple[list[str], list[InstanceIdentity]]:
    """(keywords whose values disagree, every instance with its values) for one study."""
    names = ", ".join(f"i.{a.column}" for a in IDENTITY)
    rows = cache.conn.execute(
        f"SELECT i.sop_instance_uid, i.instance_number, se.series_number, se.modality, {names} "
        "FROM instance i JOIN series se ON se.series_instance_uid = i.series_instance_uid "
        "AND se.study_instance_uid = i.study_instance_uid WHERE i.study_instance_uid = ? "
        "ORDER BY se.series_number IS NULL, se.series_number, i.instance_number IS NULL, "
        "i.instance_number, i.sop_instance_uid", (study_uid,)).fetchall()
    instances = [
        InstanceIdentity(r["sop_instance_uid"], r["series_number"], r["modality"],
                         r["instance_number"], {a.keyword: r[a.column] for a in IDENTITY})
        for r in rows
    ]
    disagreeing = [a.keyword for a in IDENTITY
                   if len({i.values[a.keyword] for i in instances}) > 1]
    return disagreeing, instances



class SafetyFindingsError(GearviewError):
    """A send or burn was refused because the studies have findings (CLI exit 4)."""

    hint = "fix the studies, or override with --force --reason TEXT"
    exit_code = 4

    def __init__(self, findings: list[Finding], operation: str) -> None:
        codes = sorted({f.code for f in findings})
        super().__init__(f"{operation} refused: {len(findings)} finding(s): {', '.join(codes)}")
        self.findings = findings


def studies_of(cache: Cache, sop_uids: Iterable[str]) -> list[str]:
    """The cached studies holding these instances (files not in the cache have none)."""
    rows = cache.conn.execute(
        "SELECT DISTINCT study_instance_uid FROM instance WHERE sop_instance_uid IN "
        "(SELECT value FROM json_each(?)) ORDER BY study_instance_uid",
        (json.dumps(list(sop_uids)),))
    return [row[0] for row in rows]


def guard(cache: Cache, study_uids: Iterable[str], operation: str, *, target: str = "",
          force: bool = False, reason: str = "") -> list[Finding]:
    """Check before `operation` (send, burn): refuse on findings unless forced with a reason.

    A forced override is audited with the findings it overrode; returns them.
    """
    uids = list(dict.fromkeys(study_uids))
    findings = check_studies(cache, uids)
    if not findings:
        return []
    if not force:
        raise SafetyFindingsError(findings, operation)
    if not reason.strip():
        raise InvalidValueError("overriding safety findings needs a reason",
                                hint="give --reason TEXT (it goes to the audit log)")
    audit.append(cache.home, "override", operation=operation, target=target, studies=uids,
                 findings=[f.to_json() for f in findings], reason=reason.strip())
    return findings
