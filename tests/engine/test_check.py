"""`store check` finds every mismatch; `store rebuild` recreates the index from files alone."""

from __future__ import annotations

from pathlib import Path

from factory import write_series

from gearview.home import Home
from gearview.store import Cache
from gearview.store.check import check_store, rebuild_index


def _fill(cache: Cache, tmp_path: Path, n: int = 4) -> list[Path]:
    return [cache.add_file(p).path for p in write_series(tmp_path / "src", n)]


def test_clean_cache_checks_clean(cache: Cache, home: Home, tmp_path: Path) -> None:
    _fill(cache, tmp_path)
    report = check_store(home, cache.files_dir)
    assert report.clean and report.indexed == report.files == 4


def test_check_reports_missing_orphan_unreadable_and_spool(
    cache: Cache, home: Home, tmp_path: Path
) -> None:
    stored = _fill(cache, tmp_path)
    stored[0].unlink()
    stored[1].write_bytes(stored[1].read_bytes()[:300])
    orphan = cache.files_dir / "00" / "orphan.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(stored[2].read_bytes())
    (cache.spool_dir / "dead.part").write_bytes(b"x")
    report = check_store(home, cache.files_dir)
    assert not report.clean
    assert report.missing == [stored[0].relative_to(cache.files_dir).as_posix()]
    assert report.orphans == ["00/orphan.dcm"]
    assert [p for p, _ in report.unreadable] == [stored[1].relative_to(cache.files_dir).as_posix()]
    assert report.spool_leftovers == 1


def test_rebuild_recreates_the_same_studies_from_files(
    cache: Cache, home: Home, tmp_path: Path
) -> None:
    _fill(cache, tmp_path)
    before = [s.to_json() for s in cache.studies()]
    cache.close()
    home.index_file.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(home.index_file) + suffix).unlink(missing_ok=True)
    report = rebuild_index(home, cache.files_dir)
    assert report.indexed == 4 and not report.skipped
    again = Cache(home)
    try:
        assert [s.to_json() for s in again.studies()] == before
        assert check_store(home, again.files_dir).clean
    finally:
        again.close()


def test_rebuild_of_a_damaged_index_keeps_it_aside_and_every_file(
    cache: Cache, home: Home, tmp_path: Path
) -> None:
    files = _fill(cache, tmp_path)
    cache.close()
    for suffix in ("-wal", "-shm"):
        Path(str(home.index_file) + suffix).unlink(missing_ok=True)
    data = home.index_file.read_bytes()
    home.index_file.write_bytes(data[: len(data) // 2])
    report = rebuild_index(home, cache.files_dir)
    assert report.indexed == 4
    assert all(p.exists() for p in files)
    assert report.moved_aside.startswith("index.sqlite.damaged-") or report.moved_aside == ""
    again = Cache(home)
    try:
        assert again.counts()["instance"] == 4
    finally:
        again.close()


def test_rebuild_skips_unreadable_files_and_says_why(
    cache: Cache, home: Home, tmp_path: Path
) -> None:
    files = _fill(cache, tmp_path, 2)
    files[0].write_bytes(b"junk")
    report = rebuild_index(home, cache.files_dir)
    assert report.indexed == 1
    assert len(report.skipped) == 1 and files[0].exists()
