"""`gearview jobs [--json] | jobs retry JOB | jobs cancel JOB`: the persistent job queue.

The same records as the GUI's Activity panel, whichever process runs them. A
job killed with its process shows as `interrupted`; `retry` runs a failed,
cancelled or interrupted job here in the foreground (a send only sends what is
still missing) with the exit codes of `send`/`move`. `cancel` stops a job
between two instances, also one another process (the GUI) is running.
"""

from __future__ import annotations

import argparse
import time

from gearview.cli.common import open_station, print_json, print_table, run_job
from gearview.jobqueue import RUNNING, JobQueue

COMMAND = "jobs"
#: How long `jobs cancel` waits for a job another process runs to stop.
CANCEL_WAIT = 10.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="list, retry or cancel send and retrieve jobs")
    parser.add_argument("--json", action="store_true", help="machine-readable list (SPEC §3)")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    retry = actions.add_parser("retry", help="run a failed, cancelled or interrupted job again")
    retry.add_argument("job", metavar="JOB", help="job id (a unique prefix is enough)")
    cancel = actions.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job", metavar="JOB", help="job id (a unique prefix is enough)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    station = open_station()
    try:
        queue = station.jobs
        if args.action == "retry":
            return run_job(queue, queue.retry(args.job), "gearview jobs retry {id}")
        if args.action == "cancel":
            return _cancel(queue, args.job)
        records = queue.jobs()
    finally:
        station.close()
    if args.json:
        print_json([r.to_json() for r in records])
        return 0
    print_table(
        ("JOB", "KIND", "STATE", "DONE", "NODE", "MESSAGE"),
        [(r.id, r.kind, r.state, f"{r.done}/{r.total}" if r.total else "", r.node,
          r.shown_message) for r in records],
    )
    return 0


def _cancel(queue: JobQueue, job_id: str) -> int:
    record = queue.cancel(job_id)
    deadline = time.monotonic() + CANCEL_WAIT
    while record.state == RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
        queue.reload()
        record = queue.get(record.id)
    if record.state == RUNNING:
        print(f"cancel requested; job {record.id} stops at its next instance")
    else:
        print(f"job {record.id} {record.state}")
    return 0
