"""`gearview rm` and `gearview keep`: whole studies go (files, rows, undo journals), audited.

A delete killed with SIGKILL at any step leaves the study whole or gone, and
`store check` clean either way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import factory
import pytest

from gearview.cli import main
from gearview.config import load_config
from gearview.edit.study_edit import edit_study
from gearview.home import Home
from gearview.jobqueue import SEND, JobQueue
from gearview.lifecycle.keep import kept
from gearview.net.tasks import send_params
from gearview.store import Cache, audit
from gearview.store.batch import journals
from gearview.store.check import iter_cache_files
from gearview.store.ledger import NOT_CORRECTED, OTHER_STUDY, Conflict, Send
from gearview.store.paths import study_relpath


def add_study(cache: Cache, folder: Path, n: int = 3, **kwargs) -> str:
    return factory.add_study(cache, folder, n, rows=8, cols=8, **kwargs)


def ls(capsys) -> dict[str, dict]:
    capsys.readouterr()
    assert main(["ls", "--json"]) == 0
    return {s["study_uid"]: s for s in json.loads(capsys.readouterr().out)}


def test_rm_removes_files_rows_and_journals_and_is_audited(cache, home, tmp_path, capsys):
    gone = add_study(cache, tmp_path / "a", patient_id="GONE")
    stays = add_study(cache, tmp_path / "b", patient_id="STAYS")
    for uid in (gone, stays):
        edit_study(cache, uid, {"StudyDescription": "corrected"}, reason="typo")
    assert main(["keep", gone]) == 0
    capsys.readouterr()
    assert main(["rm", gone, "--reason", "duplicate of a PACS study"]) == 0
    assert capsys.readouterr().out.strip() == "deleted 1 study, 3 instance(s)"
    assert set(ls(capsys)) == {stays}
    assert not (cache.files_dir / study_relpath(gone).as_posix()).exists()
    assert len(list(iter_cache_files(cache.files_dir))) == 3
    assert [set(j.study_uids_after) for j in journals(cache)] == [{stays}]
    assert gone not in kept(home)
    record = [r for r in audit.read(home) if r["action"] == "delete"]
    assert [(r["study_uid"], r["patient_id"], r["instances"], r["reason"]) for r in record] == [
        (gone, "GONE", 3, "duplicate of a PACS study")]
    assert main(["store", "check"]) == 0


def test_rm_refuses_unknown_uid_and_busy_study_deleting_nothing(cache, home, tmp_path, capsys):
    first = add_study(cache, tmp_path / "a")
    second = add_study(cache, tmp_path / "b")
    capsys.readouterr()
    assert main(["rm", first, "1.2.3.4"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no study 1.2.3.4" in err
    job = JobQueue(home, load_config(home)).submit(
        SEND, "Send to PACS", send_params("PACS", [second]))
    assert main(["rm", first, second]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"queued send job {job.id}" in err
    assert f"gearview jobs cancel {job.id}" in err
    assert set(ls(capsys)) == {first, second}
    assert main(["jobs", "cancel", job.id]) == 0
    assert main(["rm", first, second]) == 0
    assert ls(capsys) == {}
    assert list(iter_cache_files(cache.files_dir)) == []


def test_rm_of_a_study_not_sent_warns_in_one_line_and_deletes(cache, home, tmp_path, capsys):
    unsent = add_study(cache, tmp_path / "a")
    sent = add_study(cache, tmp_path / "b")
    cache.ledger.record_send([Send(sent, "PACS", time.time(), 3, 0, job="j1")])
    capsys.readouterr()
    assert main(["rm", unsent, sent]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == "deleted 2 studies, 6 instance(s)"
    (line,) = captured.err.splitlines()
    assert line.startswith("gearview: warning: not sent") and line.endswith(unsent)
    flags = {r["study_uid"]: r["not_sent"] for r in audit.read(home) if r["action"] == "delete"}
    assert flags == {unsent: True, sent: False}


def test_rm_keeps_the_correction_and_forgets_sends_and_the_study_own_flags(
    cache, home, tmp_path, capsys
):
    """A re-sent study that was deleted gets its correction again and shows as not yet sent."""
    folder = tmp_path / "a"
    uid = add_study(cache, folder)
    edit_study(cache, uid, {"StudyDescription": "corrected"}, reason="typo")
    cache.ledger.record_send([Send(uid, "PACS", time.time(), 3, 0, job="j1")])
    cache.ledger.add_conflict(Conflict(NOT_CORRECTED, "1.2.3", uid, "P", ""))
    kept_aside = Conflict(OTHER_STUDY, "1.2.4", uid, "P", "", cached_study_uid="9.9",
                          kept=".conflicts/x.dcm")
    cache.ledger.add_conflict(kept_aside)
    assert ls(capsys)[uid]["status"] == "sent"
    assert main(["rm", uid]) == 0
    assert cache.ledger.sends([uid]) == {}
    assert [c.kind for c in cache.ledger.conflicts([uid])[uid]] == [OTHER_STUDY]
    assert main(["import", str(folder)]) == 0  # the modality sends the original again
    (study,) = ls(capsys).values()
    assert (study["description"], study["status"], study["sent"]) == ("corrected", "edited", [])


def test_keep_lists_marks_and_clears(cache, home, tmp_path, capsys):
    uid = add_study(cache, tmp_path / "a")
    assert main(["keep", uid, "--reason", "teaching file"]) == 0
    assert main(["keep", uid]) == 0
    assert "0 studies kept (1 already were)" in capsys.readouterr().out
    assert main(["keep", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["study_uid"], row["reason"]) == (uid, "teaching file")
    assert main(["keep", "9.9.9"]) == 1
    assert "no study 9.9.9" in capsys.readouterr().err
    assert main(["keep", "--clear", uid]) == 0
    assert kept(home) == {}
    assert [r["action"] for r in audit.read(home)] == ["keep", "release"]


# ---- SIGKILL in the middle of a 500-instance delete ------------------------------------

KILL = r"""
import os, signal, sys
import gearview.store.removal as removal

stage, uid = sys.argv[1], sys.argv[2]


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def before(name):
    setattr(removal, name, die)


if stage == "before-manifest":
    before("atomic_write_bytes")
elif stage == "before-moves":
    before("_move_out")
elif stage == "before-rows":
    before("_delete_rows")
elif stage == "before-trash-removed":
    before("_discard")
elif stage == "mid-moves":  # file by file (the study folder holds a stray file)
    real, calls = os.rename, [0]

    def rename(source, target):
        calls[0] += 1
        if calls[0] > 250:
            die()
        real(source, target)

    removal.os.rename = rename
elif stage == "mid-trash-removal":
    def rmtree(folder, ignore_errors=False):
        for number, path in enumerate(p for p in sorted(folder.rglob("*.dcm"))):
            if number == 250:
                die()
            path.unlink()

    removal.shutil.rmtree = rmtree
from gearview.cli import main
sys.exit(main(["rm", uid]))
"""

STAGES = ("before-manifest", "before-moves", "mid-moves", "before-rows",
          "before-trash-removed", "mid-trash-removal")


@pytest.fixture(scope="module")
def big_home(tmp_path_factory) -> tuple[Path, str]:
    """A home with one 500-instance study (built once, copied per test)."""
    root = tmp_path_factory.mktemp("big") / "home"
    cache = Cache(Home(root).ensure())
    uid = add_study(cache, tmp_path_factory.mktemp("src"), 500)
    stray = cache.files_dir / study_relpath(uid).as_posix() / "notes.txt"
    cache.close()
    return root, uid, stray


@pytest.mark.parametrize("stage", STAGES)
def test_sigkill_mid_delete_leaves_the_study_whole_or_gone(big_home, home, stage, capsys):
    template, uid, stray = big_home
    shutil.rmtree(home.root)
    shutil.copytree(template, home.root)
    if stage == "mid-moves":
        (home.root / stray.relative_to(template)).write_text("not DICOM")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", KILL, stage, uid], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == -9, proc.stderr.decode()
    assert main(["store", "check"]) == 0, capsys.readouterr().out
    studies = ls(capsys)
    files = len(list(iter_cache_files(home.root / "files")))
    if stage == "before-manifest":
        assert studies[uid]["instances"] == 500 and files == 500
    else:
        assert studies == {} and files == 0
    assert list((home.root / "files" / ".trash").iterdir()) == []
