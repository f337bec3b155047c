"""`gearview anonymize STUDY_UID... (--out DIR | --iso FILE | --to NODE)`: a de-identified copy.

PS3.15 Basic Application Level Confidentiality Profile (SPEC §2.11): to a new
folder (a File-set with a DICOMDIR), to an ISO image (a PDI disc, as `burn
--iso --anonymize`) or to a node (a send job, as `send --anonymize`). The
cached files are never changed. Instances that may show burned-in text are
refused (exit 4, each one listed) unless --allow-burned-in.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from gearview.cli import deid_options
from gearview.cli.common import ProgressBar, open_station
from gearview.cli.send import run as run_send
from gearview.media.export import BurnOptions, export_folder, export_iso

COMMAND = "anonymize"


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        COMMAND, help="write a de-identified copy of studies to a folder, an ISO or a node"
    )
    parser.add_argument("study_uids", nargs="+", metavar="STUDY_UID")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, metavar="DIR", help="a new folder (File-set)")
    target.add_argument("--iso", type=Path, metavar="FILE", help="an ISO image (PDI disc)")
    target.add_argument("--to", metavar="NODE", help="send to a node (C-STORE)")
    deid_options.add_arguments(parser, switch=False)
    parser.set_defaults(run=lambda args: deid_options.refusing(lambda: run(args)))


def run(args: argparse.Namespace) -> int:
    deidentify = deid_options.options_from(args)
    if args.to:
        send_args = argparse.Namespace(
            **vars(args), node=args.to, targets=args.study_uids, retry=None, anonymize=True,
            force=False, reason="",
        )
        return run_send(send_args)
    station = open_station()
    config, cache = station.config, station.cache
    bar = ProgressBar("anonymize")
    try:
        if args.out:
            options = BurnOptions(label="ANONYMIZED", deidentify=deidentify)
            result = export_folder(cache, args.study_uids, args.out.expanduser(), options, bar)
            bar.close()
            print(args.out)
            print(f"{result.instances} de-identified instance(s) written")
            return 0
        viewer = config.media.portable_viewer
        options = BurnOptions(
            medium=config.media.default_medium,
            label="ANONYMIZED",
            viewer_dir=Path(viewer).expanduser() if viewer else None,
            deidentify=deidentify,
        )
        result = export_iso(cache, args.study_uids, args.iso.expanduser(), options, bar)
        bar.close()
        for image in result.images:
            print(image)
        print(f"{result.instances} de-identified instance(s) on {len(result.images)} disc image(s)")
        return 0
    finally:
        bar.close()
        station.close()
