"""Typed event payloads, and one CACHE_CHANGED per cache operation naming its initiator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
from factory import write_series
from pydicom.uid import generate_uid

from gearview import events as ev
from gearview.changes import Changes
from gearview.edit.study_edit import edit_study
from gearview.edit.undo import undo_last
from gearview.errors import NotFoundError, describe_error
from gearview.media.importer import import_path
from gearview.store import Cache
from gearview.store.cache import build_file_meta


@pytest.fixture
def changes_seen(cache: Cache) -> Iterator[list[ev.CacheChanged]]:
    seen: list[ev.CacheChanged] = []

    def handler(event: ev.Event) -> None:
        seen.append(event.payload)

    cache.bus.bind(ev.CACHE_CHANGED, handler)
    yield seen
    cache.bus.unbind(ev.CACHE_CHANGED, handler)


def test_every_event_type_has_a_payload_class() -> None:
    for event_type in ev.ALL_EVENTS:
        assert isinstance(event_type.payload, type), event_type


def test_a_payload_field_that_does_not_fit_fails_the_emitter() -> None:
    bus = ev.EventBus()
    with pytest.raises(TypeError):
        bus.emit(ev.CACHE_CHANGED, change=Changes())  # misspelt field
    with pytest.raises(TypeError):
        bus.emit(ev.SERVER_ERROR)  # missing field


def test_handlers_read_the_payload_or_its_fields_on_the_event() -> None:
    bus = ev.EventBus()
    seen: list[ev.Event] = []
    bus.bind(ev.ASSOCIATION_OPENED, seen.append)
    bus.emit(ev.ASSOCIATION_OPENED, calling_ae="MOD", address="127.0.0.1:104", associations=3)
    (event,) = seen
    assert event.payload == ev.AssociationChanged("MOD", "127.0.0.1:104", 3)
    assert event.associations == 3 and event.calling_ae == "MOD"
    with pytest.raises(AttributeError):
        event.no_such_field  # noqa: B018


def test_an_import_of_n_files_is_one_change_named_import(
    cache: Cache, changes_seen: list[ev.CacheChanged], tmp_path: Path
) -> None:
    study = generate_uid()
    write_series(tmp_path / "disc" / "a", 4, study_uid=study)
    write_series(tmp_path / "disc" / "b", 3, study_uid=study)
    report = import_path(tmp_path / "disc", cache)
    assert report.imported == 7
    (change,) = changes_seen
    assert change.initiator == "import"
    assert len(change.changes.instances_added) == 7 and change.changes.studies == {study}


def test_received_instances_are_one_change_each(
    cache: Cache, changes_seen: list[ev.CacheChanged], tmp_path: Path
) -> None:
    for path in write_series(tmp_path / "s", 2):
        ds = pydicom.dcmread(path)
        meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID)
        data = path.read_bytes()
        group_length = int.from_bytes(data[140:144], "little")
        cache.add_received(meta, data[144 + group_length :], source_ae="MODALITY")
    assert [c.initiator for c in changes_seen] == ["receive", "receive"]


def test_nested_operations_report_once_for_the_outermost_initiator(
    cache: Cache, changes_seen: list[ev.CacheChanged], tmp_path: Path
) -> None:
    initiator = object()
    with cache.operation(initiator):
        import_path(write_series(tmp_path / "a", 2)[0].parent, cache)
        cache.add_file(write_series(tmp_path / "b", 1)[0])
        assert changes_seen == []  # nothing is announced before the operation ends
    (change,) = changes_seen
    assert change.initiator is initiator and len(change.changes.instances_added) == 3


def test_an_operation_that_fails_still_reports_what_it_changed(
    cache: Cache, changes_seen: list[ev.CacheChanged], tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError), cache.operation("remove"):
        cache.add_file(write_series(tmp_path / "a", 1)[0])
        cache.remove_studies([generate_uid()])
    (change,) = changes_seen
    assert len(change.changes.instances_added) == 1


def test_edit_undo_and_remove_name_themselves(
    cache: Cache, changes_seen: list[ev.CacheChanged], tmp_path: Path
) -> None:
    study = generate_uid()
    for path in write_series(tmp_path / "s", 2, study_uid=study):
        cache.add_file(path)
    changes_seen.clear()
    edit_study(cache, study, {"PatientID": "NEW-ID"})
    undo_last(cache, study)
    cache.remove_studies([study])
    assert [c.initiator for c in changes_seen] == ["edit", "undo", "remove"]


def test_describe_error_gives_hint_or_type() -> None:
    assert describe_error(NotFoundError("no study 1.2", hint="check the UID")) == (
        "no study 1.2 (check the UID)"
    )
    assert describe_error(KeyError("x")) == "KeyError: 'x'"
