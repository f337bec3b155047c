"""Fixtures shared by every test: an isolated home folder, an open station on it, its cache."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from gearview.config import load_config  # noqa: E402
from gearview.home import Home  # noqa: E402
from gearview.station import Station  # noqa: E402


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    """A fresh GEARVIEW_HOME for this test only."""
    root = tmp_path / "gvhome"
    monkeypatch.setenv("GEARVIEW_HOME", str(root))
    return Home(root).ensure()


@pytest.fixture
def station(home: Home):
    """The station of the test's home, open; closed (server, jobs, decoder, cache) after it."""
    s = Station(home, load_config(home)).open()
    yield s
    s.close()


@pytest.fixture
def cache(station: Station):
    return station.cache


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """A test that leaves a non-daemon thread running has leaked it."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [
        t for t in threading.enumerate() if t.ident not in before and t.is_alive() and not t.daemon
    ]
    for t in leaked:
        t.join(timeout=5)
    still = [t.name for t in leaked if t.is_alive()]
    assert not still, f"test leaked threads: {still}"
