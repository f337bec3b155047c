"""Group commit: concurrent receivers are published together, each one still all-or-nothing."""

from __future__ import annotations

import io
import threading
import time

from factory import make_ct
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from gearview.errors import StoreError
from gearview.store import Cache
from gearview.store import group_commit as group_commit_module
from gearview.store.cache import build_file_meta
from gearview.store.check import check_store


def _received(cache: Cache, ds: Dataset) -> None:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    meta_end = 144 + int.from_bytes(raw[140:144], "little")
    meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, ExplicitVRLittleEndian, "CT1")
    cache.add_received(meta, raw[meta_end:], source_ae="CT1")


def test_concurrent_receivers_all_land_and_the_cache_checks_clean(cache: Cache) -> None:
    study = generate_uid()
    series = [generate_uid() for _ in range(4)]
    errors: list[BaseException] = []

    def receive(series_uid: str) -> None:
        try:
            for i in range(1, 26):
                _received(cache, make_ct(study, series_uid, i))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            cache.index.close_current()

    threads = [threading.Thread(target=receive, args=(uid,)) for uid in series]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert cache.counts()["instance"] == 100
    assert len([p for p in cache.files_dir.rglob("*.dcm")]) == 100
    assert check_store(cache.home, cache.files_dir).clean


def test_one_failing_row_leaves_the_rest_of_its_group_stored(cache: Cache, monkeypatch) -> None:
    """A batch where one instance cannot be indexed: that one is absent (no row, no file)."""
    study, series = generate_uid(), generate_uid()
    blocker, good, bad = (make_ct(study, series, i) for i in (1, 2, 3))
    real_upsert = group_commit_module.upsert_instance

    def upsert(conn, info, *args):
        result = real_upsert(conn, info, *args)
        if info.sop_instance_uid == bad.SOPInstanceUID:  # fails after its row was written
            conn.execute("INSERT INTO instance (sop_uid) VALUES (NULL)")
        return result

    monkeypatch.setattr(group_commit_module, "upsert_instance", upsert)
    release, leading = threading.Event(), threading.Event()
    original = cache._group_commit._publish_locked

    groups: list[int] = []

    def slow_batch(batch):
        leading.set()
        release.wait(10)  # hold the lock so the next instances queue up as one group
        groups.append(len(batch))
        original(batch)

    monkeypatch.setattr(cache._group_commit, "_publish_locked", slow_batch)
    outcome: dict[str, BaseException | None] = {}

    def receive(ds: Dataset) -> None:
        try:
            _received(cache, ds)
            outcome[ds.SOPInstanceUID] = None
        except BaseException as exc:  # inspected below
            outcome[ds.SOPInstanceUID] = exc
        finally:
            cache.index.close_current()

    threads = [threading.Thread(target=receive, args=(ds,)) for ds in (blocker, good, bad)]
    threads[0].start()
    assert leading.wait(10)
    for thread in threads[1:]:
        thread.start()
    while len(cache._group_commit._queue) < 2:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join()
    assert groups == [1, 2]
    assert outcome[good.SOPInstanceUID] is None
    assert isinstance(outcome[bad.SOPInstanceUID], StoreError)
    assert cache.instance(good.SOPInstanceUID) is not None
    assert cache.instance(bad.SOPInstanceUID) is None
    assert len(list(cache.files_dir.rglob("*.dcm"))) == 2
    assert check_store(cache.home, cache.files_dir).clean
