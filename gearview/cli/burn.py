"""`gearview burn STUDY_UID... (--iso FILE | --device DEV) [--no-viewer]`: write an IHE PDI disc.

--device takes a drive (`/dev/sr0`, a macOS device id, a Windows drive letter)
or `stdio:FILE` for an emulated drive; the disc is read back and every file's
checksum verified before success is reported. `--anonymize` burns a
de-identified copy (see `gearview anonymize`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gearview.cli import deid_options
from gearview.cli.common import (
    ProgressBar,
    add_override_arguments,
    check_override,
    load_station,
    refused,
)
from gearview.errors import InvalidValueError
from gearview.media.export import MEDIA_CAPACITY, BurnOptions, burn_disc, export_iso
from gearview.media.fileset import DEFAULT_PROFILE, PROFILES
from gearview.qc.checks import SafetyFindingsError, guard

COMMAND = "burn"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="burn studies to a disc or an ISO image (IHE PDI)")
    parser.add_argument("study_uids", nargs="+", metavar="STUDY_UID")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--iso", type=Path, metavar="FILE", help="write an ISO 9660 + Joliet image")
    target.add_argument(
        "--device", metavar="DEV", help="burn to this drive (stdio:FILE emulates one)"
    )
    parser.add_argument(
        "--no-viewer", action="store_true", help="leave the portable viewer off the disc"
    )
    parser.add_argument(
        "--medium", choices=list(MEDIA_CAPACITY), help="capacity to check (default: config)"
    )
    parser.add_argument(
        "--profile",
        choices=list(PROFILES),
        default=DEFAULT_PROFILE,
        help="STD-GEN-CD decompresses; the DVD profiles keep JPEG / JPEG 2000",
    )
    parser.add_argument("--label", default="GEARVIEW", help="volume label")
    parser.add_argument(
        "--split",
        action="store_true",
        help="split across several discs/images when the selection does not fit",
    )
    deid_options.add_arguments(parser, switch=True)
    add_override_arguments(parser, "burn")
    parser.set_defaults(run=lambda args: deid_options.refusing(lambda: run(args)))


def run(args: argparse.Namespace) -> int:
    station = load_station()
    config = station.config
    viewer = (
        None
        if args.no_viewer or not config.media.portable_viewer
        else Path(config.media.portable_viewer).expanduser()
    )
    check_override(args)
    options = BurnOptions(
        medium=args.medium or config.media.default_medium,
        profile=args.profile,
        label=args.label,
        viewer_dir=viewer,
        split=args.split,
        deidentify=deid_options.options_from(args),
        keep_original_attributes=config.media.keep_original_attributes,
    )
    if args.device and args.split:
        raise InvalidValueError(
            "--split works with --iso only", hint="write ISO images, then burn each"
        )
    cache = station.open().cache
    try:
        if options.deidentify is None:  # a de-identified copy has no identity to mix up
            guard(cache, args.study_uids, "burn", target=str(args.iso or args.device),
                  force=args.force, reason=args.reason)
    except SafetyFindingsError as exc:
        station.close()
        return refused(exc, "nothing was written; --force --reason TEXT overrides")
    except BaseException:
        station.close()
        raise
    bar = ProgressBar("burn")
    try:
        if args.iso:
            result = export_iso(cache, args.study_uids, args.iso.expanduser(), options, bar)
            bar.close()
            for image in result.images:
                print(image)
            print(f"{result.instances} instance(s) on {len(result.images)} disc image(s)")
            return 0
        result, verified = burn_disc(cache, args.study_uids, args.device, options, progress=bar)
        bar.close()
        print(f"burned {result.instances} instance(s) to {args.device}; {verified.summary()}")
        return 0
    finally:
        bar.close()
        station.close()
