"""The retention policy: only studies safe elsewhere, sent long ago and not kept, oldest first."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import factory
import pytest
from factory import write_series

from gearview import events as ev
from gearview.config import Node, config_from_dict, load_config
from gearview.edit.study_edit import edit_study
from gearview.errors import ConfigError, StorageFullError
from gearview.jobqueue import JobQueue
from gearview.lifecycle.delete import delete_studies
from gearview.lifecycle.keep import set_kept
from gearview.lifecycle.monitor import RetentionMonitor
from gearview.lifecycle.retention import KEPT, NOT_SENT, TOO_RECENT, plan_purge, purge
from gearview.lifecycle.space import FULL, OK, WARNING, Limits, Usage, level_of
from gearview.store import Cache
from gearview.store.ledger import Send

DAY = 86400.0


def add_study(cache: Cache, folder: Path, n: int = 3) -> str:
    return factory.add_study(cache, folder, n, rows=16, cols=16)


def delivered(cache: Cache, study_uid: str, when: float, node: str = "PACS", *,
              committed: int = 0, instances: int | None = None, failed: int = 0,
              job: str = "") -> None:
    """A run of a send job of the study that started at `when`, as the QC ledger records it."""
    count = len(cache.instances(study_uid=study_uid)) if instances is None else instances
    cache.ledger.record_send([Send(study_uid, node, when, count, failed, committed,
                                   job or uuid.uuid4().hex[:12])])


def two_sent_over_the_limit(cache: Cache, studies: list[str]) -> tuple[object, JobQueue]:
    """The first two studies delivered just now, and a size limit they must go for."""
    t0 = time.time() + 0.01
    for uid in studies[:2]:
        delivered(cache, uid, t0)
    time.sleep(0.05)
    config = configured(cache, max_size="1 B", keep_sent_days=0)
    return config, JobQueue(cache.home, config)


@pytest.fixture
def studies(cache: Cache, tmp_path: Path) -> list[str]:
    return [add_study(cache, tmp_path / str(i)) for i in range(4)]


def configured(cache: Cache, **storage) -> object:
    config = load_config(cache.home)
    config.nodes = [Node("PACS", "PACS", "127.0.0.1", 104),
                    Node("ARCHIVE", "ARCH", "127.0.0.1", 105, roles=["send", "commit"])]
    for key, value in storage.items():
        setattr(config.storage, key, value)
    return config.validate()


def test_only_safe_old_unkept_studies_go_oldest_first(cache, studies):
    _unsent, old, older, kept, recent = [*studies, add_study(cache, cache.home.root / "r")]
    sizes = cache.study_sizes()
    t0 = time.time() + 1
    delivered(cache, old, t0 + 2)
    delivered(cache, older, t0 + 1)
    delivered(cache, kept, t0)
    delivered(cache, recent, t0 + 9 * DAY)
    set_kept(cache.home, [kept])
    config = configured(cache, max_size="1 B", keep_sent_days=7)
    plan = plan_purge(cache, config, now=t0 + 10 * DAY)
    assert [c.study.study_instance_uid for c in plan.remove] == [older, old]
    assert plan.protected == {NOT_SENT: 1, KEPT: 1, TOO_RECENT: 1}
    assert plan.short == cache.size() - 1 - sizes[older] - sizes[old]
    assert "over storage.max_size" in plan.why()


def test_stops_once_within_the_limit(cache, studies):
    t0 = time.time() + 1
    for offset, uid in enumerate(studies):
        delivered(cache, uid, t0 + offset)
    size = cache.study_sizes()[studies[0]]
    config = configured(cache, max_size=f"{cache.size() - size - size // 2} B", keep_sent_days=0)
    plan = plan_purge(cache, config, now=t0 + 10)
    assert [c.study.study_instance_uid for c in plan.remove] == studies[:2] and plan.short == 0


def test_changed_since_sent_commit_missing_or_partly_sent_is_not_safe(cache, studies):
    edited, uncommitted, partly, committed = studies
    t0 = time.time() + 1
    delivered(cache, edited, t0)
    delivered(cache, uncommitted, t0, node="ARCHIVE", committed=2)  # 3 sent, 2 committed
    delivered(cache, partly, t0, instances=2, failed=1)
    delivered(cache, committed, t0, node="ARCHIVE", committed=3)
    time.sleep(max(0.0, t0 - time.time()) + 0.05)
    edit_study(cache, edited, {"StudyDescription": "corrected after the send"})
    config = configured(cache, max_size="1 B", keep_sent_days=0)
    plan = plan_purge(cache, config, now=t0 + 10)
    assert [c.study.study_instance_uid for c in plan.remove] == [committed]
    assert plan.protected == {NOT_SENT: 3}


def test_a_retried_send_counts_from_its_first_run(cache, studies):
    """Instances sent before an edit are not sent again by a retry: the job stays unsafe."""
    uid = studies[0]
    t0 = time.time() + 0.01
    delivered(cache, uid, t0, instances=2, failed=1, job="J")  # the node was down half-way
    time.sleep(0.05)
    edit_study(cache, uid, {"StudyDescription": "corrected between the two runs"})
    time.sleep(0.05)
    delivered(cache, uid, time.time(), job="J")  # the retry sends only the third instance
    config = configured(cache, max_size="1 B", keep_sent_days=0)
    assert plan_purge(cache, config).remove == []
    again = time.time()
    delivered(cache, uid, again, job="K")  # a new send of the corrected study
    (candidate,) = plan_purge(cache, config).remove
    assert (candidate.study.study_instance_uid, candidate.safe_since) == (uid, again)


def test_new_instance_after_the_send_keeps_the_study(cache, studies, tmp_path):
    t0 = time.time() + 0.01
    delivered(cache, studies[0], t0)
    time.sleep(0.05)
    for path in write_series(tmp_path / "late", 1, study_uid=studies[0], rows=16, cols=16):
        cache.add_file(path)
    config = configured(cache, max_size="1 B", keep_sent_days=0)
    assert plan_purge(cache, config).remove == []


def test_purge_deletes_and_audits_and_refuses_what_changed_after_the_plan(cache, studies, tmp_path):
    from gearview.store import audit

    config, queue = two_sent_over_the_limit(cache, studies)
    plan = plan_purge(cache, config)
    assert len(plan.remove) == 2
    # a modality sends one more instance of the first study while the purge is planned
    for path in write_series(tmp_path / "late", 1, study_uid=studies[0], rows=16, cols=16):
        cache.add_file(path)
    result = purge(cache, config, queue, plan=plan)
    assert [c.study.study_instance_uid for c in result.removed] == [studies[1]]
    assert result.skipped[0][0].study.study_instance_uid == studies[0]
    assert "changed since it was sent" in result.skipped[0][1]
    assert cache.study(studies[0]).number_of_study_related_instances == 4
    (record,) = [r for r in audit.read(cache.home) if r["action"] == "purge"]
    assert record["study_uid"] == studies[1] and "storage.max_size" in record["reason"]


def test_within_the_limits_nothing_is_planned(cache, studies):
    config = configured(cache, max_size="1 TB", min_free="1 B")
    plan = plan_purge(cache, config)
    assert not plan.needed and plan.remove == [] and not plan.protected


def test_levels_warn_before_the_limits():
    limits = Limits(max_size=1000, min_free=100)
    assert level_of(Usage(800, 10_000, 20_000), limits) == OK
    assert level_of(Usage(950, 10_000, 20_000), limits) == WARNING
    assert level_of(Usage(800, 140, 20_000), limits) == WARNING
    assert level_of(Usage(1001, 10_000, 20_000), limits) == FULL
    assert level_of(Usage(800, 99, 20_000), limits) == FULL
    assert level_of(Usage(800, 900, 20_000), Limits(0, 0)) == WARNING  # < 5 % free


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("max_size", "lots", "not a size"),
    ("max_size", "10%", "not a size"),
    ("min_free", "120%", "between 0 and 100"),
    ("min_free", "-1 GB", "not a size"),
    ("keep_sent_days", -1, "0 or more"),
    ("when_full", "panic", "recycle, reject"),
])
def test_bad_retention_settings_name_the_key(key, value, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        config_from_dict({"storage": {key: value}})
    assert info.value.key == f"storage.{key}"


def test_sizes_and_percentages_parse():
    config = config_from_dict({"storage": {"max_size": "1.5 GiB", "min_free": "10%"}})
    assert config.storage.size_limit() == 3 * 2**29
    assert config.storage.free_floor(2_000) == 200
    assert config_from_dict({"storage": {"min_free": "20 GB"}}).storage.free_floor(1) == 20 * 10**9


def test_reject_mode_gate_refuses_new_instances_when_over(cache, studies):
    config = configured(cache, max_size="1 kB", when_full="reject")
    monitor = RetentionMonitor(cache, lambda: config, JobQueue(cache.home, config))
    monitor.start()
    try:
        assert monitor.state.level == FULL
        with pytest.raises(StorageFullError, match="storage.max_size"):
            cache.admission()
        config.storage.max_size = ""  # the admin lifts the limit: the next check lets them in
        monitor.check()
        cache.admission()
    finally:
        monitor.stop()
    assert cache.admission is None


def test_recycle_mode_purges_sent_studies_and_refuses_only_when_stuck(cache, studies):
    t0 = time.time() + 0.01
    delivered(cache, studies[0], t0)
    time.sleep(0.05)
    config = configured(cache, max_size=f"{cache.size() - 1} B", keep_sent_days=0)
    monitor = RetentionMonitor(cache, lambda: config, JobQueue(cache.home, config))
    monitor.start()
    try:
        assert cache.study(studies[0]) is None  # purged at the first check
        assert monitor.state.level != FULL
        cache.admission()
        config.storage.max_size = "1 kB"  # only unsent studies are left: nothing can go
        monitor.check()
        assert [cache.study(u) is not None for u in studies[1:]] == [True] * 3
        with pytest.raises(StorageFullError):
            cache.admission()
    finally:
        monitor.stop()


def test_a_purge_and_a_delete_are_one_cache_change_each(cache, studies):
    seen: list[ev.CacheChanged] = []

    def changed(event: ev.Event) -> None:
        seen.append(event.payload)

    config, queue = two_sent_over_the_limit(cache, studies)
    cache.bus.bind(ev.CACHE_CHANGED, changed)
    try:
        assert len(purge(cache, config, queue).removed) == 2
        delete_studies(cache, studies[2:], queue=queue)
    finally:
        cache.bus.unbind(ev.CACHE_CHANGED, changed)
    assert [(c.initiator, c.changes.studies_removed) for c in seen] == [
        ("purge", set(studies[:2])), ("remove", set(studies[2:]))]
