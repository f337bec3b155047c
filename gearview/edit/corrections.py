"""Corrections persist (SPEC §2.10): an edit is remembered, and arrivals get it again.

Every demographics edit, tag edit and structure fix leaves its values in the
ledger as rules keyed by the study it was made on (a whole-study edit) or by
each instance (a tag edit of some instances, a moved series). `Reapplier` is
the cache's `Corrector`: an instance of an edited study that arrives again -
the modality re-sending, a C-MOVE, the same disc imported again - is
rewritten with the same values before it is stored, its previous values in
Original Attributes Sequence, as dcm4chee-arc's attribute coercion does on
receive. Undo removes the edit's rules.

`open_cache` is how the station opens its cache: with the Reapplier
installed, so that every way in re-applies corrections.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydicom.tag import Tag

from gearview import events as ev
from gearview.config import Config
from gearview.edit.apply import Assignments, apply_assignments
from gearview.edit.provenance import REASON_CORRECT, modification_datetime
from gearview.edit.rewrite import read_header, write_rewritten
from gearview.home import Home
from gearview.store import Cache
from gearview.store.atomic import spool_writer
from gearview.store.header import info_from_dataset
from gearview.store.intake import Corrected
from gearview.store.ledger import Rule


def open_cache(home: Home, config: Config | None = None,
               bus: ev.EventBus | None = None) -> Cache:
    """The station's cache: corrections are re-applied on every way in."""
    return Cache(home, config, bus, corrector=Reapplier())


def remember(cache: Cache, assignments: Assignments, *, undo_id: str | None, reason: str,
             kind: str, study_uid: str, sop_uids: Iterable[str] = (),
             touched: Iterable[str] = ()) -> None:
    """Keep an edit's values as rules: for the whole study, or for each of `sop_uids`.

    `touched` are the studies whose history shows the edit (default: `study_uid`).
    An edit that changed nothing (no undo id) leaves no rule.
    """
    if undo_id is None:
        return
    keys = [(study_uid, sop) for sop in sop_uids] or [(study_uid, "")]
    cache.ledger.add_rules(
        Rule(study, sop, int(tag), vr, value, reason, undo_id)
        for study, sop in keys
        for tag, (vr, value) in assignments.items()
    )
    cache.ledger.record_edit(list(touched) or [study_uid], undo_id, kind)


def forget(cache: Cache, undo_id: str) -> None:
    """An undone edit is no longer re-applied."""
    cache.ledger.remove_edit(undo_id)


class Reapplier:
    """Rewrite an arriving spool file with its study's corrections (see `store/intake.py`)."""

    def __call__(self, spool: Path, rules: list[Rule], spool_dir: Path,
                 apply: bool = True) -> Corrected | None:
        assignments: Assignments = {}
        reason = REASON_CORRECT
        for rule in rules:  # later rules win
            assignments[Tag(rule.tag)] = (rule.vr, rule.value)
            reason = rule.reason
        header = read_header(spool)
        change = apply_assignments(header.ds, assignments, reason, modification_datetime())
        if change is None:
            return None
        ts = str(header.ds.file_meta.TransferSyntaxUID)
        info = info_from_dataset(header.ds, ts)
        info.has_pixels = header.has_tail or "PixelData" in header.ds
        if not apply:
            return Corrected(spool, info, change.previous)
        with spool_writer(spool_dir, "a corrected instance") as (corrected, fh):
            write_rewritten(header, fh)
        return Corrected(corrected, info, change.previous)
