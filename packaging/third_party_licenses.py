"""Print the third-party licence list that ships with a bundled gearview installer.

Walks gearview's installed runtime dependencies (transitively) with
importlib.metadata and prints one Markdown table row per distribution.
GPL-licensed components are flagged: their presence is why bundled
installers are distributed under the GPLv3.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

ROOT = "gearview"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def requirement_names(dist: metadata.Distribution) -> list[str]:
    names = []
    for req in dist.requires or []:
        if "extra ==" in req:
            continue
        match = NAME.match(req)
        if match:
            names.append(match.group(0))
    return names


def licence_of(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    expression = meta.get("License-Expression")
    if expression:
        return expression
    classifiers = [
        c.split("::")[-1].strip()
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")
    ]
    if classifiers:
        return "; ".join(classifiers)
    text = (meta.get("License") or "").strip().splitlines()
    return text[0][:80] if text else "unknown"


def closure(root: str) -> dict[str, metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        key = name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[key] = dist
        todo.extend(requirement_names(dist))
    return seen


def main() -> int:
    dists = closure(ROOT)
    dists.pop(ROOT, None)
    out = sys.stdout
    out.write("# Third-party components bundled with gearview\n\n")
    out.write("| component | version | licence |\n|---|---|---|\n")
    gpl = []
    for key in sorted(dists):
        dist = dists[key]
        licence = licence_of(dist)
        if "GPL" in licence and "LGPL" not in licence:
            gpl.append(dist.metadata["Name"])
        out.write(f"| {dist.metadata['Name']} | {dist.version} | {licence} |\n")
    if gpl:
        out.write(f"\nGPL components: {', '.join(gpl)} — this bundle is distributed under GPLv3.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
