"""The bridge turns engine events (any thread) into Qt signals delivered on the GUI thread."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, QThread, Signal
from PySide6.QtWidgets import QCheckBox

from gearview import events
from gearview.changes import Changes
from gearview.events import EventBus
from gearview.ui.bridge import Bridge


class _Flag(QObject):
    toggled = Signal(bool)


def test_bool_signal_survives_thousands_of_emissions(qtbot):
    """FACTS: PySide6 6.12 aborts (bool_dealloc) after a few thousand bool emissions."""
    flag = _Flag()
    received: list[bool] = []
    flag.toggled.connect(received.append)
    box = QCheckBox()
    qtbot.addWidget(box)
    for i in range(5000):
        flag.toggled.emit(i % 2 == 0)
        box.setChecked(i % 3 == 0)
        assert box.isChecked() is (i % 3 == 0)
    assert len(received) == 5000
    assert received[:4] == [True, False, True, False]


def test_events_from_a_worker_thread_arrive_on_the_gui_thread(qtbot):
    bus = EventBus()
    bridge = Bridge(bus)
    seen: list[tuple[object, bool]] = []

    class Receiver(QObject):
        def on_changes(self, changes: object) -> None:
            seen.append((changes, QThread.currentThread() is self.thread()))

    receiver = Receiver()
    bridge.cache_changed.connect(receiver.on_changes)
    changes = Changes(studies_added={"1.2.3"})
    worker = threading.Thread(
        target=bus.emit, args=(events.CACHE_CHANGED,), kwargs={"changes": changes}
    )
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: len(seen) == 1)
    assert seen[0][0].changes is changes
    assert seen[0][1], "the slot ran outside the GUI thread"
    bridge.close()


def test_every_server_event_has_a_signal(qtbot):
    bus = EventBus()
    bridge = Bridge(bus)
    got: dict[str, object] = {}
    bridge.server_state.connect(lambda s: got.setdefault("state", s))
    bridge.association_opened.connect(lambda d: got.setdefault("opened", d))
    bridge.association_closed.connect(lambda d: got.setdefault("closed", d))
    bridge.server_error.connect(lambda m: got.setdefault("error", m))
    bridge.instance_stored.connect(lambda d: got.setdefault("stored", d))
    bus.emit(events.SERVER_STATE, state="S")
    bus.emit(events.ASSOCIATION_OPENED, calling_ae="A", address="x", associations=1)
    bus.emit(events.ASSOCIATION_CLOSED, calling_ae="A", address="x", associations=0)
    bus.emit(events.SERVER_ERROR, message="disk full")
    bus.emit(events.INSTANCE_STORED, info=None, path="p", source_ae="A", replaced=False)
    qtbot.waitUntil(lambda: len(got) == 5)
    assert got["state"] == "S"
    assert got["opened"].associations == 1
    assert got["closed"].associations == 0
    assert got["error"] == "disk full"
    assert got["stored"].source_ae == "A"
    bridge.close()


def test_close_unbinds_from_the_bus(qtbot):
    bus = EventBus()
    bridge = Bridge(bus)
    seen: list[object] = []
    bridge.cache_changed.connect(seen.append)
    bridge.close()
    bridge.close()
    bus.emit(events.CACHE_CHANGED, changes=Changes(studies_added={"1"}))
    qtbot.wait(50)
    assert seen == []
    assert not bus._handlers.get(events.CACHE_CHANGED)


def test_close_disconnects_the_widgets_slots(qtbot):
    """A payload already on its way when the window closes reaches nobody."""
    bridge = Bridge(EventBus())
    seen: list[object] = []
    bridge.cache_changed.connect(seen.append)
    bridge.server_error.connect(seen.append)
    bridge.close()
    bridge.cache_changed.emit(events.CacheChanged(Changes(studies_added={"1"})))
    bridge.server_error.emit("late")
    assert seen == []
