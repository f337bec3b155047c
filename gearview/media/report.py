"""The per-import report: every file not imported and why, plus warnings.

Saved under the home's logs folder so a clerk can show exactly what an
outside disc held; the text contains file names from the medium (escaped by
repr) but no patient data beyond what the warnings name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gearview.changes import Changes
from gearview.media.conflicts import Conflict
from gearview.store.atomic import atomic_write_bytes


@dataclass
class ImportReport:
    source: str
    imported: int = 0
    replaced: int = 0
    not_imported: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    studies: set[str] = field(default_factory=set)
    changes: Changes = field(default_factory=Changes)
    #: Instances not replaced because their SOP Instance UID is cached elsewhere.
    conflicts: list[Conflict] = field(default_factory=list)
    conflicts_replaced: int = 0
    #: Outside -> local identity per reconciled patient (`ReconcilePlan.describe`).
    reconciled: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False
    partial_medium: bool = False
    path: Path | None = None

    def add(self, name: str, reason: str) -> None:
        self.not_imported.append((name, reason))

    def summary(self) -> str:
        text = (
            f"imported {self.imported} instance(s) in {len(self.studies)} study(ies); "
            f"{len(self.not_imported)} file(s) not imported"
        )
        if self.conflicts:
            text += (
                f"; {len(self.conflicts)} not replaced: already cached under another patient "
                "or study"
            )
        if self.conflicts_replaced:
            text += f"; {self.conflicts_replaced} cached instance(s) of another study replaced"
        if self.warnings:
            text += f"; {len(self.warnings)} warning(s)"
        if self.cancelled:
            text += " (cancelled)"
        if self.partial_medium:
            text += " (the medium is damaged: the import is partial)"
        return text

    def to_text(self) -> str:
        lines = [
            f"gearview import report — {time.strftime('%Y-%m-%d %H:%M:%S')}",
            f"source: {self.source}",
            self.summary(),
            "",
        ]
        if self.reconciled:
            lines.append("Reconciled (IHE IRWF):")
            lines.extend(f"  - {_reconciled_line(row)}" for row in self.reconciled)
            lines.append("")
        if self.conflicts:
            lines.append("Conflicts (cached copy kept; import again with replace to overwrite):")
            lines.extend(f"  {c.name!r}: {c.reason}" for c in self.conflicts)
            lines.append("")
        if self.warnings:
            lines.append("Warnings:")
            lines.extend(f"  - {w}" for w in self.warnings)
            lines.append("")
        if self.not_imported:
            lines.append("Not imported:")
            lines.extend(f"  {name!r}: {reason}" for name, reason in self.not_imported)
        return "\n".join(lines) + "\n"

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"import-{time.strftime('%Y%m%d-%H%M%S')}-{id(self) & 0xFFFF:04x}.txt"
        atomic_write_bytes(path, self.to_text().encode("utf-8", "replace"))
        self.path = path
        return path


def _reconciled_line(row: dict[str, Any]) -> str:
    outside, local = row["outside"], row["local"]
    text = (
        f"outside {outside['patient_id']!r} {outside['name']!r} -> local {local['patient_id']!r}"
        f" {local['name']!r} {local['birth_date']} {local['sex']}"
    )
    if row.get("source"):
        text += f" (from {row['source']})"
    if row.get("accession"):
        text += f", order {row['accession']}"
    return text
