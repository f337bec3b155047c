"""`gearview render FILE|SOP_UID [--frame N] [--window C,W] -o OUT.png`: one frame as PNG."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from gearview.cli.common import open_station
from gearview.errors import InvalidValueError, NotFoundError
from gearview.imaging import ImageSource, RenderOptions, Window, render_frame
from gearview.imaging.png import write_png

COMMAND = "render"
log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(COMMAND, help="render one frame of an instance to PNG")
    parser.add_argument("source", help="a DICOM file, or a SOP Instance UID in the local cache")
    parser.add_argument("--frame", type=int, default=1, help="1-based frame number (default 1)")
    parser.add_argument(
        "--window", help="C,W — window centre and width (default: the file's first)"
    )
    parser.add_argument(
        "--window-index",
        type=int,
        default=1,
        help="use the file's N-th window (1-based, default 1)",
    )
    parser.add_argument(
        "--voi-lut", action="store_true", help="use the file's VOI LUT, not its window"
    )
    parser.add_argument("--invert", action="store_true", help="invert the grey scale")
    parser.add_argument(
        "--no-overlays", action="store_true", help="do not draw 60xx overlay planes"
    )
    parser.add_argument("-o", "--output", required=True, type=Path, help="PNG file to write")
    parser.set_defaults(run=run)


def parse_window(text: str) -> Window:
    """'C,W' → Window; width must be positive."""
    try:
        center, width = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise InvalidValueError(
            f"--window {text!r} is not C,W", hint="e.g. --window 40,400"
        ) from exc
    if width <= 0:
        raise InvalidValueError(f"--window width must be positive, not {width:g}")
    return Window(center, width)


def resolve_source(text: str) -> Path:
    """A path that exists, else a SOP Instance UID looked up in the local cache."""
    path = Path(text)
    if path.is_file():
        return path
    station = open_station()
    cache = station.cache
    try:
        record = cache.instance(text)
    finally:
        station.close()
    if record is None:
        raise NotFoundError(
            f"{text} is neither a file nor an instance in the local cache",
            hint="check the path, or list instances with `gearview ls`",
        )
    return record.path


def run(args: argparse.Namespace) -> int:
    options = RenderOptions(
        window=parse_window(args.window) if args.window else None,
        window_index=max(args.window_index - 1, 0),
        use_voi_lut=args.voi_lut,
        invert=args.invert,
        overlays=not args.no_overlays,
    )
    source = ImageSource(resolve_source(args.source))
    geo = source.geometry
    if not 1 <= args.frame <= geo.frames:
        raise InvalidValueError(f"--frame {args.frame} is out of range (1..{geo.frames})")
    rendered = render_frame(source, args.frame - 1, options=options)
    write_png(args.output, rendered.pixels)
    log.info("rendered frame %d with %s", args.frame, rendered.voi_label or "no VOI")
    return 0
