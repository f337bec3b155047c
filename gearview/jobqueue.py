"""A persistent queue of network jobs (retrieve, send) that survives restarts.

Each job is one JSON file under `home.jobs_dir`, rewritten atomically as it
progresses, holding what to do (`params`), where it is (`state`, counts) and
for sends which instances already reached the peer. A job found `running`
when the queue opens was interrupted by a crash or quit and is queued again;
a retry of a send only sends what is missing. The GUI's Activity panel and
the CLI show the same records; progress and completion are also emitted on
the event bus (JOB_PROGRESS / JOB_FINISHED).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gearview import events as ev
from gearview.config import Config
from gearview.errors import Cancelled, GearviewError, NotFoundError, describe_error
from gearview.home import Home
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.store.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
SEND, RETRIEVE = "send", "retrieve"
SAVE_INTERVAL = 0.5
#: Progress events are rate-limited: a fast send reports hundreds of instances a second.
EMIT_INTERVAL = 0.1


@dataclass
class JobRecord:
    """One job as stored on disk and shown in the Activity panel."""

    id: str
    kind: str
    title: str
    params: dict[str, Any]
    state: str = QUEUED
    done: int = 0
    total: int = 0
    message: str = ""
    error: str = ""
    #: The exit status a failure maps to (SPEC §3: 5 peer unreachable, 6 partly done, ...).
    exit_code: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    attempts: int = 0
    #: SOP Instance UIDs the peer accepted (sends: skipped on retry).
    completed_uids: list[str] = field(default_factory=list)
    #: SOP Instance UID -> status text, for failures and warnings (shown per instance).
    failures: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def snapshot(self) -> JobRecord:
        """A copy for other threads (the worker keeps mutating the original)."""
        return replace(
            self,
            params=dict(self.params),
            completed_uids=list(self.completed_uids),
            failures=dict(self.failures),
            warnings=dict(self.warnings),
            result=dict(self.result),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


Runner = Callable[["JobContext"], None]


@dataclass
class JobContext:
    """What a job runner gets: its record, a progress callback and the cancel token."""

    record: JobRecord
    progress: ProgressCallback
    token: CancelToken
    save: Callable[[], None]


class JobQueue:
    """Jobs on disk plus an optional worker thread that runs queued ones in order."""

    def __init__(
        self,
        home: Home,
        config: Config,
        runners: dict[str, Runner] | None = None,
        bus: ev.EventBus = ev.bus,
    ) -> None:
        self.home = home.ensure()
        self.config = config
        self.dir = Path(home.jobs_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bus = bus
        self.runners: dict[str, Runner] = dict(runners or {})
        self._lock = threading.RLock()
        self._tokens: dict[str, CancelToken] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs: dict[str, JobRecord] = {}
        self._load()

    # ---- persistence ---------------------------------------------------

    def _path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.json"

    def _load(self) -> None:
        for path in sorted(self.dir.glob("*.json")):
            try:
                record = JobRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("ignoring unreadable job file %s: %s", path.name, exc)
                continue
            if record.state == RUNNING:
                record.state = QUEUED
                record.message = "interrupted; will resume"
                self._save(record)
            self._jobs[record.id] = record

    def _save(self, record: JobRecord) -> None:
        record.updated = time.time()
        data = json.dumps(asdict(record), indent=1).encode()
        atomic_write_bytes(self._path(record.id), data)

    # ---- public API ----------------------------------------------------

    def submit(self, kind: str, title: str, params: dict[str, Any]) -> JobRecord:
        record = JobRecord(id=uuid.uuid4().hex[:12], kind=kind, title=title, params=params)
        with self._lock:
            self._jobs[record.id] = record
            self._save(record)
        self._emit_progress(record)
        self._wake.set()
        return record

    def jobs(self) -> list[JobRecord]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda r: r.created)

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            matches = [r for i, r in self._jobs.items() if i == job_id or i.startswith(job_id)]
        if len(matches) != 1:
            raise NotFoundError(
                f"no job {job_id!r}" if not matches else f"job id {job_id!r} is ambiguous"
            )
        return matches[0]

    def cancel(self, job_id: str) -> None:
        """Cancel a running job (it stops between instances) or drop a queued one."""
        record = self.get(job_id)
        with self._lock:
            token = self._tokens.get(record.id)
            if token is not None:
                token.cancel()
            elif record.state == QUEUED:
                record.state = CANCELLED
                record.message = "cancelled before it started"
                self._save(record)
                self._emit_finished(record)

    def retry(self, job_id: str, params: dict[str, Any] | None = None) -> JobRecord:
        """Queue a failed or cancelled job again (a send resends only what is missing).

        `params` replace the job's (a send retried despite findings records the override).
        """
        record = self.get(job_id)
        with self._lock:
            if record.state in (RUNNING, QUEUED):
                return record
            if params is not None:
                record.params = params
            record.state = QUEUED
            record.error = ""
            record.message = "queued for retry"
            self._save(record)
        self._wake.set()
        return record

    def remove(self, job_id: str) -> None:
        record = self.get(job_id)
        with self._lock:
            if record.state == RUNNING:
                raise GearviewError("cannot remove a running job", hint="cancel it first")
            self._jobs.pop(record.id, None)
            self._path(record.id).unlink(missing_ok=True)

    def run(
        self,
        job_id: str,
        progress: ProgressCallback = no_progress,
        token: CancelToken | None = None,
    ) -> JobRecord:
        """Run one job in the calling thread (the CLI does this); returns the final record."""
        record = self.get(job_id)
        runner = self.runners.get(record.kind)
        if runner is None:
            raise GearviewError(f"no runner for {record.kind!r} jobs")
        token = token or CancelToken()
        with self._lock:
            if record.state == RUNNING:
                raise GearviewError(f"job {record.id} is already running")
            self._tokens[record.id] = token
            record.state = RUNNING
            record.attempts += 1
            record.error = ""
            record.exit_code = 0
            self._save(record)
        last_save = [time.monotonic()]

        def save() -> None:
            with self._lock:
                self._save(record)
            last_save[0] = time.monotonic()

        last_emit = [0.0]

        def report(p: Progress) -> None:
            record.done, record.total, record.message = p.done, p.total or 0, p.message
            now = time.monotonic()
            if now - last_save[0] > SAVE_INTERVAL:
                save()
            if now - last_emit[0] > EMIT_INTERVAL or (p.total and p.done >= p.total):
                last_emit[0] = now
                self._emit_progress(record)
            progress(p)

        try:
            runner(JobContext(record, report, token, save))
            record.state = DONE
            record.message = record.message or "done"
        except Cancelled:
            if self._stop.is_set():  # the app is quitting: resume at the next start
                record.state = QUEUED
                record.message = "interrupted; will resume"
            else:
                record.state = CANCELLED
                record.message = "cancelled"
        except GearviewError as exc:
            record.state = FAILED
            record.error = describe_error(exc)
            record.exit_code = exc.exit_code
        except Exception as exc:  # noqa: BLE001  - a job failure is shown, never crashes the queue
            log.exception("job %s failed", record.id)
            record.state = FAILED
            record.error = describe_error(exc)
            record.exit_code = GearviewError.exit_code
        finally:
            with self._lock:
                self._tokens.pop(record.id, None)
                self._save(record)
        self._emit_finished(record)
        return record

    # ---- background worker (GUI) --------------------------------------

    def start(self) -> None:
        """Run queued jobs one at a time on a daemon thread (resumes interrupted ones)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="gv-jobs", daemon=True)
        self._thread.start()
        self._wake.set()

    def request_stop(self) -> None:
        """Ask the worker to stop (from any thread, never blocks); see `stop`."""
        self._stop.set()
        with self._lock:
            for token in self._tokens.values():
                token.cancel()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the running job and stop the worker; the job resumes at the next start."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _next(self) -> JobRecord | None:
        with self._lock:
            for record in sorted(self._jobs.values(), key=lambda r: r.created):
                if record.state == QUEUED and record.kind in self.runners:
                    return record
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            record = self._next()
            if record is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self.run(record.id)

    # ---- events ----------------------------------------------------------

    def _emit_progress(self, record: JobRecord) -> None:
        self.bus.emit(ev.JOB_PROGRESS, job=record.snapshot())

    def _emit_finished(self, record: JobRecord) -> None:
        self.bus.emit(ev.JOB_FINISHED, job=record.snapshot())
