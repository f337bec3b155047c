"""A persistent queue of network jobs (retrieve, send) that survives restarts.

Each job is one JSON file under `home.jobs_dir`, rewritten atomically as it
progresses, holding what to do (`params`), where it is (`state`, counts) and
for sends which instances already reached the peer. A retry of a send only
sends what is missing. The GUI's Activity panel and the CLI (`gearview jobs`)
show the same records; progress and completion are also emitted on the event
bus (JOB_PROGRESS / JOB_FINISHED).

Several processes share the folder (the GUI, `gearview send`, `gearview jobs`):
a running job holds an exclusive lock on `<id>.lock`, so a job file that says
`running` while nobody holds its lock was killed with its process and is shown
as `interrupted` (retry resumes it). A job the app stops on quit is queued
again and resumes at the next start. `cancel` of a job another process runs
leaves a `<id>.cancel` marker that process picks up at its next progress step.
A queue with a worker (`start`) retries a send that failed on a network error
(the node could not be reached, or the association broke) by itself,
`client.send_retries` times with a doubling delay. A send the node answered -
some instances refused, storage commitment not reported in time - waits for
a user's retry: sending the same instances again would get the same answer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from gearview import events as ev
from gearview.config import Config
from gearview.errors import (
    Cancelled,
    GearviewError,
    InvalidValueError,
    NetworkError,
    NotFoundError,
    describe_error,
)
from gearview.home import Home
from gearview.jobs import CancelToken, Progress, ProgressCallback, no_progress
from gearview.platform.locks import exclusive_lock
from gearview.store.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
#: Killed with its process while running: shown as such, resumed by a retry.
INTERRUPTED = "interrupted"
FINISHED = (DONE, FAILED, CANCELLED, INTERRUPTED)
RETRYABLE = (FAILED, CANCELLED, INTERRUPTED)
SEND, RETRIEVE = "send", "retrieve"
SAVE_INTERVAL = 0.5
#: Progress events are rate-limited: a fast send reports hundreds of instances a second.
EMIT_INTERVAL = 0.1
#: The longest wait between automatic retries of a send.
MAX_RETRY_DELAY = 3600.0
JSON_KEYS = ("id", "kind", "state", "done", "total", "message", "node", "study_uids")


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
    #: Automatic retries since the last run a user started; when the next one is due.
    auto_retries: int = 0
    retry_at: float = 0.0

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def node(self) -> str:
        return str(self.params.get("node", ""))

    @property
    def study_uids(self) -> list[str]:
        """The cached studies this job reads or writes (a delete of them is refused meanwhile)."""
        if "study_uids" in self.params:
            return list(self.params["study_uids"])
        return [self.params["study_uid"]] if self.params.get("study_uid") else []

    @property
    def shown_message(self) -> str:
        """What the Activity panel and `gearview jobs` show: the error of a failed job."""
        return self.error if self.state == FAILED and self.error else self.message

    def to_json(self) -> dict[str, Any]:
        """The stable SPEC §3 shape of `jobs --json`."""
        values = {**asdict(self), "message": self.shown_message, "node": self.node,
                  "study_uids": self.study_uids}
        return {key: values[key] for key in JSON_KEYS}

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


class JobBusyError(GearviewError):
    """The job runs in another gearview process."""

    hint = "wait for it, or cancel it first (`gearview jobs cancel JOB`)"


class JobQueue:
    """Jobs on disk plus an optional worker thread that runs queued ones in order."""

    def __init__(
        self,
        home: Home,
        config: Config | Callable[[], Config],
        runners: dict[str, Runner] | None = None,
        bus: ev.EventBus = ev.bus,
    ) -> None:
        self.home = home.ensure()
        #: A callable follows settings changed while the queue runs (the GUI's).
        self._config = config if callable(config) else (lambda: config)
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
        #: mtime_ns of each job file as last read (`reload` re-reads only changed ones).
        self._seen: dict[str, int] = {}
        #: Jobs the worker may start: found queued at open, or submitted/retried here.
        self._ours: set[str] = set()
        self._load()

    # ---- persistence ---------------------------------------------------

    def _path(self, job_id: str) -> Path:
        return self.dir / f"{job_id}.json"

    def _marker(self, job_id: str, kind: str) -> Path:
        return self.dir / f"{job_id}.{kind}"

    def _parse(self, path: Path) -> JobRecord | None:
        try:
            mtime = path.stat().st_mtime_ns
            record = JobRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("ignoring unreadable job file %s: %s", path.name, exc)
            return None
        self._seen[record.id] = mtime
        return record

    def _read(self, path: Path) -> JobRecord | None:
        """A job file as it is now; `running` without a live owner becomes `interrupted`."""
        record = self._parse(path)
        if record is None or record.state != RUNNING or record.id in self._tokens:
            return record
        with exclusive_lock(self._marker(record.id, "lock"), blocking=False) as free:
            if not free:
                return record
            record = self._parse(path)  # its owner may have finished it just now
            if record is not None and record.state == RUNNING:
                record.state = INTERRUPTED
                record.message = "interrupted (its process ended); retry resumes it"
                self._save(record)
        return record

    def _load(self) -> None:
        for path in sorted(self.dir.glob("*.json")):
            record = self._read(path)
            if record is not None:
                self._jobs[record.id] = record
                if record.state == QUEUED:
                    self._ours.add(record.id)

    def reload(self) -> list[JobRecord]:
        """Pick up what other processes changed on disk; returns (and emits) the changed jobs."""
        changed = []
        with self._lock:
            for path in sorted(self.dir.glob("*.json")):
                job_id = path.stem
                try:
                    mtime = path.stat().st_mtime_ns
                except OSError:
                    continue
                known = self._jobs.get(job_id)
                stale = known is not None and known.state == RUNNING and job_id not in self._tokens
                if job_id in self._tokens or (self._seen.get(job_id) == mtime and not stale):
                    continue
                record = self._read(path)
                if record is not None and (known is None or asdict(known) != asdict(record)):
                    self._jobs[record.id] = record
                    changed.append(record.snapshot())
        for record in changed:
            self._emit_progress(record)
        return changed

    def _save(self, record: JobRecord) -> None:
        record.updated = time.time()
        data = json.dumps(asdict(record), indent=1).encode()
        atomic_write_bytes(self._path(record.id), data)
        with contextlib.suppress(OSError):
            self._seen[record.id] = self._path(record.id).stat().st_mtime_ns

    # ---- public API ----------------------------------------------------

    def submit(self, kind: str, title: str, params: dict[str, Any]) -> JobRecord:
        record = JobRecord(id=uuid.uuid4().hex[:12], kind=kind, title=title, params=params)
        with self._lock:
            self._jobs[record.id] = record
            self._ours.add(record.id)
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
                f"no job {job_id!r}" if not matches else f"job id {job_id!r} is ambiguous",
                hint="see `gearview jobs`",
            )
        return matches[0]

    def pending_for(self, study_uids: Iterable[str]) -> list[JobRecord]:
        """Queued or running jobs that read or write any of the studies, other processes' too
        (the job files are read again first)."""
        self.reload()
        wanted = set(study_uids)
        return [r for r in self.jobs() if r.state in (QUEUED, RUNNING)
                and wanted.intersection(r.study_uids)]

    def _current(self, job_id: str) -> JobRecord:
        """The job as its file says now (another process may have moved it on); under _lock."""
        record = self.get(job_id)
        if record.id in self._tokens:
            return record
        fresh = self._read(self._path(record.id))
        if fresh is not None:
            self._jobs[fresh.id] = fresh
        return fresh or record

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a running job (it stops between instances) or drop a queued/interrupted one.

        A job running in another process is asked to stop through a marker
        file; it is still `running` when this returns.
        """
        with self._lock:
            record = self._current(job_id)
            token = self._tokens.get(record.id)
            if token is not None:
                token.cancel()
            elif record.state == RUNNING:
                self._marker(record.id, "cancel").touch()
            elif record.state in (QUEUED, INTERRUPTED):
                record.state = CANCELLED
                record.message = "cancelled before it finished"
                record.retry_at = 0.0
                self._save(record)
                self._emit_finished(record)
            else:
                raise InvalidValueError(f"job {record.id} is already {record.state}")
        return record

    def retry(self, job_id: str, params: dict[str, Any] | None = None) -> JobRecord:
        """Queue a failed, cancelled or interrupted job again (a send resends what is missing).

        `params` replace the job's (a send retried despite findings records the override).
        """
        with self._lock:
            record = self._current(job_id)
            if record.state == QUEUED:
                self._ours.add(record.id)
                return record
            if record.state not in RETRYABLE:
                raise InvalidValueError(f"job {record.id} is {record.state}; nothing to retry")
            if params is not None:
                record.params = params
            record.state = QUEUED
            record.error = ""
            record.auto_retries, record.retry_at = 0, 0.0
            record.message = "queued for retry"
            self._ours.add(record.id)
            self._save(record)
        self._wake.set()
        return record

    def remove(self, job_id: str) -> None:
        record = self.get(job_id)
        with self._lock:
            if record.state == RUNNING:
                raise GearviewError("cannot remove a running job", hint="cancel it first")
            self._jobs.pop(record.id, None)
            self._ours.discard(record.id)
            for path in (self._path(record.id), self._marker(record.id, "lock"),
                         self._marker(record.id, "cancel")):
                path.unlink(missing_ok=True)

    def run(
        self,
        job_id: str,
        progress: ProgressCallback = no_progress,
        token: CancelToken | None = None,
    ) -> JobRecord:
        """Run one job in the calling thread (the CLI does this); returns the final record.

        Raises JobBusyError when another process runs it.
        """
        return self._run(job_id, progress, token, auto_retry=False)

    def _run(
        self, job_id: str, progress: ProgressCallback, token: CancelToken | None, auto_retry: bool
    ) -> JobRecord:
        record = self.get(job_id)
        runner = self.runners.get(record.kind)
        if runner is None:
            raise GearviewError(f"no runner for {record.kind!r} jobs")
        token = token or CancelToken()
        with contextlib.ExitStack() as held:
            with self._lock:
                if record.id in self._tokens:
                    raise JobBusyError(f"job {record.id} is already running")
                if not held.enter_context(
                    exclusive_lock(self._marker(record.id, "lock"), blocking=False)
                ):
                    raise JobBusyError(f"job {record.id} is running in another gearview process")
                record = self._parse(self._path(record.id)) or record  # as the last owner left it
                self._jobs[record.id] = record
                if record.state not in (QUEUED, RUNNING):  # RUNNING: its owner died
                    raise InvalidValueError(f"job {record.id} is {record.state}",
                                            hint="`gearview jobs retry JOB` queues it again")
                self._marker(record.id, "cancel").unlink(missing_ok=True)
                self._tokens[record.id] = token
                record.state = RUNNING
                record.attempts += 1
                record.error = ""
                record.exit_code = 0
                record.retry_at = 0.0
                self._save(record)
            self._execute(record, runner, progress, token, auto_retry)
        self._emit_finished(record)
        return record

    def _execute(self, record: JobRecord, runner: Runner, progress: ProgressCallback,
                 token: CancelToken, auto_retry: bool) -> None:
        last_save = [time.monotonic()]
        cancel_marker = self._marker(record.id, "cancel")

        def save() -> None:
            with self._lock:
                self._save(record)
            last_save[0] = time.monotonic()
            if cancel_marker.exists():
                token.cancel()

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
            record.auto_retries = 0
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
            if auto_retry and isinstance(exc, NetworkError):
                self._schedule_retry(record)
        except Exception as exc:  # noqa: BLE001  - a job failure is shown, never crashes the queue
            log.exception("job %s failed", record.id)
            record.state = FAILED
            record.error = describe_error(exc)
            record.exit_code = GearviewError.exit_code
        finally:
            with self._lock:
                self._tokens.pop(record.id, None)
                cancel_marker.unlink(missing_ok=True)
                self._save(record)

    def _schedule_retry(self, record: JobRecord) -> None:
        """Queue a send that failed on a network error again after a doubling delay."""
        client = self._config().client
        if record.kind != SEND or record.auto_retries >= client.send_retries:
            return
        record.auto_retries += 1
        delay = min(client.send_retry_delay * 2 ** (record.auto_retries - 1), MAX_RETRY_DELAY)
        record.retry_at = time.time() + delay
        record.state = QUEUED
        at = time.strftime("%H:%M:%S", time.localtime(record.retry_at))
        record.message = (f"{record.error}; automatic retry {record.auto_retries} of "
                          f"{client.send_retries} at {at}")

    # ---- background worker (GUI) --------------------------------------

    def start(self) -> None:
        """Run queued jobs one at a time on a daemon thread (resumes jobs stopped on quit)."""
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
        now = time.time()
        with self._lock:
            for record in sorted(self._jobs.values(), key=lambda r: r.created):
                if (record.state == QUEUED and record.id in self._ours
                        and record.kind in self.runners and record.retry_at <= now):
                    return record
        return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            record = self._next()
            if record is None:
                self._wake.wait(1.0)
                self._wake.clear()
                self.reload()
                continue
            try:
                self._run(record.id, no_progress, None, auto_retry=True)
            except (JobBusyError, InvalidValueError) as exc:  # another process has it, or ran it
                log.info("job %s left to its other owner: %s", record.id, describe_error(exc))
                with self._lock:
                    self._ours.discard(record.id)

    # ---- events ----------------------------------------------------------

    def _emit_progress(self, record: JobRecord) -> None:
        self.bus.emit(ev.JOB_PROGRESS, job=record.snapshot())

    def _emit_finished(self, record: JobRecord) -> None:
        self.bus.emit(ev.JOB_FINISHED, job=record.snapshot())
