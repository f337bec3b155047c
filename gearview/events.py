"""Named engine events, bound and unbound like pynetdicom's evt_handlers.

The engine never imports Qt; the GUI's bridge binds handlers here and turns
events into queued Qt signals. A handler that raises is logged and skipped so
one broken view never stops the server from storing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventType:
    name: str
    description: str

    def __str__(self) -> str:
        return self.name


INSTANCE_STORED = EventType("INSTANCE_STORED", "an instance was written to the cache and indexed")
CACHE_CHANGED = EventType(
    "CACHE_CHANGED", "patients/studies/series/instances were added, updated or removed"
)
ASSOCIATION_OPENED = EventType("ASSOCIATION_OPENED", "a peer opened an association with our server")
ASSOCIATION_CLOSED = EventType("ASSOCIATION_CLOSED", "an association with our server ended")
SERVER_STATE = EventType("SERVER_STATE", "the embedded server started, stopped or failed")
SERVER_ERROR = EventType(
    "SERVER_ERROR", "the embedded server hit an error worth showing to the user"
)
JOB_PROGRESS = EventType("JOB_PROGRESS", "a background job reported progress")
JOB_FINISHED = EventType("JOB_FINISHED", "a background job finished, failed or was cancelled")

ALL_EVENTS = (
    INSTANCE_STORED,
    CACHE_CHANGED,
    ASSOCIATION_OPENED,
    ASSOCIATION_CLOSED,
    SERVER_STATE,
    SERVER_ERROR,
    JOB_PROGRESS,
    JOB_FINISHED,
)


@dataclass(frozen=True)
class Event:
    type: EventType
    data: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None


Handler = Callable[[Event], None]


class EventBus:
    """Thread-safe handler registry; handlers run on the thread that emits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handlers: dict[EventType, list[Handler]] = {}

    def bind(self, event_type: EventType, handler: Handler) -> None:
        with self._lock:
            handlers = self._handlers.setdefault(event_type, [])
            if handler not in handlers:
                handlers.append(handler)

    def unbind(self, event_type: EventType, handler: Handler) -> None:
        with self._lock:
            handlers = self._handlers.get(event_type, [])
            if handler in handlers:
                handlers.remove(handler)

    def emit(self, event_type: EventType, **data: Any) -> None:
        with self._lock:
            handlers = list(self._handlers.get(event_type, ()))
        if not handlers:
            return
        event = Event(event_type, data)
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("handler %r for %s raised; skipped", handler, event_type)


#: The process-wide bus the engine emits on.
bus = EventBus()
