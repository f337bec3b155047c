"""The one place engine events become Qt signals.

Engine events are emitted on whatever thread did the work (pynetdicom's
server threads, job workers). `Bridge` binds one handler per event type on
the engine's `EventBus` and re-emits the event's typed payload as a Qt
signal of a QObject living in the GUI thread, so every slot connected to a
bridge signal runs on the GUI thread (Qt queues cross-thread emissions).
Widgets connect bound methods of themselves (Qt drops those connections when
the widget is deleted), never to the bus; `close()` unbinds the bridge and
disconnects every slot, so nothing runs after the window has shut down.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

from gearview import events
from gearview.events import Event, EventBus, EventType


class Bridge(QObject):
    """Qt signals mirroring the engine's events (payloads are the engine's dataclasses)."""

    #: `events.CacheChanged`: the `Changes` of one operation and its initiator.
    cache_changed = Signal(object)
    #: `events.InstanceStored`.
    instance_stored = Signal(object)
    #: the server's `ServerState`.
    server_state = Signal(object)
    #: `events.AssociationChanged`.
    association_opened = Signal(object)
    association_closed = Signal(object)
    #: a message the server wants the user to see.
    server_error = Signal(str)
    #: the job's `JobRecord` snapshot.
    job_progress = Signal(object)
    job_finished = Signal(object)

    def __init__(self, bus: EventBus | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._bus = bus or events.bus
        #: event type -> (signal, what of the payload it carries)
        self._routes: dict[EventType, tuple[SignalInstance, Callable[[Any], Any]]] = {
            events.CACHE_CHANGED: (self.cache_changed, _whole),
            events.INSTANCE_STORED: (self.instance_stored, _whole),
            events.SERVER_STATE: (self.server_state, lambda p: p.state),
            events.ASSOCIATION_OPENED: (self.association_opened, _whole),
            events.ASSOCIATION_CLOSED: (self.association_closed, _whole),
            events.SERVER_ERROR: (self.server_error, lambda p: p.message),
            events.JOB_PROGRESS: (self.job_progress, lambda p: p.job),
            events.JOB_FINISHED: (self.job_finished, lambda p: p.job),
        }
        for event_type in self._routes:
            self._bus.bind(event_type, self._forward)
        self._bound = True

    @property
    def bus(self) -> EventBus:
        return self._bus

    def _forward(self, event: Event) -> None:
        """Engine thread: hand the payload to the GUI thread."""
        signal, part = self._routes[event.type]
        signal.emit(part(event.payload))

    def close(self) -> None:
        """Stop listening to the engine and disconnect every slot (idempotent)."""
        if not self._bound:
            return
        self._bound = False
        for event_type, (signal, _) in self._routes.items():
            self._bus.unbind(event_type, self._forward)
            with warnings.catch_warnings():  # PySide warns when a signal had no slot
                warnings.simplefilter("ignore", RuntimeWarning)
                signal.disconnect()


def _whole(payload: Any) -> Any:
    return payload
