"""The de-identification options `anonymize`, `send --anonymize` and `burn --anonymize` share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from gearview.deid import BurnedInRefused, DeidOptions
from gearview.errors import InvalidValueError

#: Exit code of a refused export (SPEC §3: safety findings).
EXIT_REFUSED = 4


def add_arguments(parser: argparse.ArgumentParser, switch: bool) -> None:
    """The options; `switch` adds --anonymize (send and burn), which the others then need."""
    group = parser.add_argument_group("de-identification (PS3.15 Basic Profile)")
    if switch:
        group.add_argument(
            "--anonymize",
            action="store_true",
            help="write a de-identified copy (the cached files are not changed)",
        )
    group.add_argument(
        "--retain-dates",
        action="store_true",
        help="keep dates and times (Retain Longitudinal Temporal Information Full Dates)",
    )
    group.add_argument("--patient-name", default="", metavar="NAME", help="pseudonym name")
    group.add_argument("--patient-id", default="", metavar="ID", help="pseudonym patient ID")
    group.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="also copy images that may show burned-in text and encapsulated documents",
    )


def options_from(args: argparse.Namespace) -> DeidOptions | None:
    """The validated options, or None when no de-identification was asked for."""
    chosen = DeidOptions(
        retain_dates=args.retain_dates,
        patient_name=args.patient_name,
        patient_id=args.patient_id,
        allow_burned_in=args.allow_burned_in,
    )
    if not getattr(args, "anonymize", True):
        if chosen != DeidOptions():
            raise InvalidValueError(
                "the de-identification options need --anonymize", hint="add --anonymize"
            )
        return None
    return chosen.validated()


def refusing(run: Callable[[], int]) -> int:
    """Run a command; a burned-in refusal lists the instances and exits with 4."""
    try:
        return run()
    except BurnedInRefused as exc:
        for item in exc.refusals:
            print(f"refused: {item.line()}", file=sys.stderr)
        print(f"gearview: error: {exc.one_line()}", file=sys.stderr)
        return EXIT_REFUSED
