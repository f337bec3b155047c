"""Named engine events with typed payloads, bound and unbound like pynetdicom's evt_handlers.

Each `EventType` names the dataclass its events carry, so a handler reads
`event.payload.changes` (or, pynetdicom-style, `event.changes`) instead of
digging in a dict, and an emitter that passes a wrong field fails at once.
The engine never imports Qt; the GUI's bridge binds handlers here and turns
events into queued Qt signals. A handler that raises is logged and skipped so
one broken view never stops the server from storing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gearview.changes import Changes

if TYPE_CHECKING:  # payload field types from the layers that emit them
    from gearview.jobqueue import JobRecord
    from gearview.net.server import ServerState
    from gearview.store import InstanceInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstanceStored:
    """An instance is on disk and indexed (one per instance, whoever stored it)."""

    info: InstanceInfo
    path: Path
    source_ae: str
    replaced: bool


@dataclass(frozen=True)
class CacheChanged:
    """What one cache operation changed, and who asked for it.

    `initiator` is the object (a dialog, the window) or the name of the engine
    operation ("import", "receive", "edit", ...) that made the change, so a
    view can tell its own operations from others' (Anki's OpChanges handler).
    """

    changes: Changes
    initiator: object | None = None


@dataclass(frozen=True)
class AssociationChanged:
    """A peer's association with our server opened or closed."""

    calling_ae: str
    address: str
    #: associations open after this one opened or closed.
    associations: int


@dataclass(frozen=True)
class ServerStateChanged:
    state: ServerState


@dataclass(frozen=True)
class ServerMessage:
    """Something the embedded server wants the user to see (storage full, port busy)."""

    message: str


@dataclass(frozen=True)
class JobChanged:
    """A snapshot of a queued job after it progressed or finished."""

    job: JobRecord


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    payload: type

    def __str__(self) -> str:
        return self.name


INSTANCE_STORED = EventType(
    "INSTANCE_STORED", "an instance was written to the cache and indexed", InstanceStored
)
CACHE_CHANGED = EventType(
    "CACHE_CHANGED",
    "one operation added, updated or removed patients/studies/series/instances",
    CacheChanged,
)
ASSOCIATION_OPENED = EventType(
    "ASSOCIATION_OPENED", "a peer opened an association with our server", AssociationChanged
)
ASSOCIATION_CLOSED = EventType(
    "ASSOCIATION_CLOSED", "an association with our server ended", AssociationChanged
)
SERVER_STATE = EventType(
    "SERVER_STATE", "the embedded server started, stopped or failed", ServerStateChanged
)
SERVER_ERROR = EventType(
    "SERVER_ERROR", "the embedded server hit an error worth showing to the user", ServerMessage
)
JOB_PROGRESS = EventType("JOB_PROGRESS", "a background job reported progress", JobChanged)
JOB_FINISHED = EventType(
    "JOB_FINISHED", "a background job finished, failed or was cancelled", JobChanged
)

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
    payload: Any

    def __getattr__(self, name: str) -> Any:
        """The payload's fields read as the event's own (`event.changes`), like pynetdicom's."""
        if name == "payload":
            raise AttributeError(name)
        return getattr(self.payload, name)


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

    def emit(self, event_type: EventType, **fields: Any) -> None:
        """Build the event type's payload from `fields` (TypeError when they do not fit)."""
        payload = event_type.payload(**fields)
        with self._lock:
            handlers = list(self._handlers.get(event_type, ()))
        if not handlers:
            return
        event = Event(event_type, payload)
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                log.exception("handler %r for %s raised; skipped", handler, event_type)


#: The process-wide bus the engine emits on.
bus = EventBus()
