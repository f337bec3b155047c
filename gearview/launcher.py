"""Entry point of the `gearview` command: no arguments opens the GUI, a
subcommand runs headless. Kept apart so the CLI package never imports Qt."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] == "gui":
        from gearview.ui.app import main as gui_main

        return gui_main(args[1:])
    from gearview.cli import main as cli_main

    return cli_main(args)
