"""pytest-qt: the status bar shows free space and the cache size, and warns before the limits."""

from __future__ import annotations

from factory import write_series

from gearview.lifecycle.space import FULL, OK, WARNING


def _measured(window, qtbot, level: str):
    status = window.storage_status
    status.refresh()
    qtbot.waitUntil(lambda: status.state is not None and status.state.level == level
                    and not status._busy, timeout=10_000)
    return status


def test_shows_free_space_and_warns_near_then_over_the_limit(window, qtbot, tmp_path):
    for path in write_series(tmp_path / "a", 4, rows=32, cols=32):
        window.cache.add_file(path)
    size = window.cache.size()
    window.config.storage.min_free = "1 B"  # whatever this disk's free space, only the size counts
    window.config.storage.max_size = f"{size * 10} B"
    status = _measured(window, qtbot, OK)
    assert "free" in status.label.text() and "cache" in status.label.text()
    assert status.label.styleSheet() == ""
    window.config.storage.max_size = f"{int(size * 1.05)} B"
    status = _measured(window, qtbot, WARNING)
    assert "nearly full" in status.toolTip() and status.label.styleSheet()
    window.config.storage.max_size = f"{size // 2} B"
    window.config.storage.when_full = "reject"
    status = _measured(window, qtbot, FULL)
    assert "Storage full" in status.toolTip() and "refused (A700)" in status.toolTip()
    assert "over storage.max_size" in status.toolTip()


def test_refreshes_after_the_cache_changes(window, qtbot, tmp_path):
    status = window.storage_status
    qtbot.waitUntil(lambda: status.state is not None and not status._busy, timeout=10_000)
    before = status.state.usage.cache_bytes
    for path in write_series(tmp_path / "b", 2, rows=32, cols=32):
        window.cache.add_file(path)
    qtbot.waitUntil(lambda: status.state.usage.cache_bytes > before, timeout=10_000)
