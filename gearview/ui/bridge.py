"""The one place engine events become Qt signals.

Engine events are emitted on whatever thread did the work (pynetdicom's
server threads, job workers). `Bridge` binds a handler per event on the
engine's `EventBus` and re-emits it as a Qt signal of a QObject living in the
GUI thread, so every slot connected to a bridge signal runs on the GUI thread
(Qt queues cross-thread emissions). Widgets connect to the bridge, never to
the bus, and disconnect when they close; `close()` unbinds the bridge itself.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from gearview import events
from gearview.events import Event, EventBus, EventType


class Bridge(QObject):
    """Qt signals mirroring the engine's events (payloads are the engine's objects)."""

    #: `Changes` of one cache mutation.
    cache_changed = Signal(object)
    #: the INSTANCE_STORED event data (dict: info, path, source_ae, replaced).
    instance_stored = Signal(object)
    #: the server's `ServerState`.
    server_state = Signal(object)
    #: the ASSOCIATION_OPENED / _CLOSED event data (dict: calling_ae, address, associations).
    association_opened = Signal(object)
    association_closed = Signal(object)
    #: a message the server wants the user to see.
    server_error = Signal(str)
    #: the JOB_PROGRESS / JOB_FINISHED event data (dict).
    job_progress = Signal(object)
    job_finished = Signal(object)

    def __init__(self, bus: EventBus | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._bus = bus or events.bus
        self._handlers: dict[EventType, Callable[[Event], None]] = {
            events.CACHE_CHANGED: lambda e: self.cache_changed.emit(e.data.get("changes")),
            events.INSTANCE_STORED: lambda e: self.instance_stored.emit(dict(e.data)),
            events.SERVER_STATE: lambda e: self.server_state.emit(e.data.get("state")),
            events.ASSOCIATION_OPENED: lambda e: self.association_opened.emit(dict(e.data)),
            events.ASSOCIATION_CLOSED: lambda e: self.association_closed.emit(dict(e.data)),
            events.SERVER_ERROR: lambda e: self.server_error.emit(str(e.data.get("message", ""))),
            events.JOB_PROGRESS: lambda e: self.job_progress.emit(dict(e.data)),
            events.JOB_FINISHED: lambda e: self.job_finished.emit(dict(e.data)),
        }
        for event_type, handler in self._handlers.items():
            self._bus.bind(event_type, handler)
        self._bound = True

    @property
    def bus(self) -> EventBus:
        return self._bus

    def close(self) -> None:
        """Stop listening to the engine (idempotent); call before the bridge is deleted."""
        if not self._bound:
            return
        for event_type, handler in self._handlers.items():
            self._bus.unbind(event_type, handler)
        self._bound = False
