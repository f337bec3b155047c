"""Where gearview keeps its state: `$GEARVIEW_HOME` or the platform's user-data folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "gearview"


@dataclass(frozen=True)
class Home:
    """The one folder holding config, index, files, logs and audit log."""

    root: Path

    @classmethod
    def default(cls) -> Home:
        env = os.environ.get("GEARVIEW_HOME")
        root = Path(env) if env else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
        return cls(root.expanduser().resolve())

    @property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @property
    def index_file(self) -> Path:
        return self.root / "index.sqlite"

    @property
    def ledger_file(self) -> Path:
        """The QC ledger: correction rules, sends, conflicts (not rebuildable from files)."""
        return self.root / "qc.sqlite"

    @property
    def default_files_dir(self) -> Path:
        return self.root / "files"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    @property
    def jobs_dir(self) -> Path:
        return self.root / "jobs"

    def ensure(self) -> Home:
        """Create the folder tree (owner-only: it holds PHI)."""
        for path in (self.root, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self
