"""Undo the last edit or structure fix of a study: byte-identical files come back."""

from __future__ import annotations

from gearview.changes import Changes
from gearview.edit.corrections import forget
from gearview.errors import NotFoundError
from gearview.store import Cache, audit
from gearview.store.batch import BatchInfo, last_for_study


def last_edit(cache: Cache, study_uid: str) -> BatchInfo | None:
    """The most recent undoable change of `study_uid` (None when there is none)."""
    return last_for_study(cache, study_uid)


def undo_last(cache: Cache, study_uid: str) -> Changes:
    """Restore the study as it was before its last edit (refused if it changed since)."""
    info = last_edit(cache, study_uid)
    if info is None:
        raise NotFoundError(f"no edit of study {study_uid} to undo")
    changes = cache.undo_batch(info.undo_id)
    forget(cache, info.undo_id)
    audit.append(
        cache.home,
        "undo",
        study_uid=study_uid,
        undone=info.undo_id,
        undone_kind=info.kind,
        description=info.description,
        instances=info.instances,
    )
    return changes
