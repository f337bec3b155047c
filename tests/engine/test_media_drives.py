"""Import source candidates: discs and USB sticks from the mount table, /Volumes."""

from __future__ import annotations

from pathlib import Path

from gearview.media.drives import linux_candidates, mac_candidates


def test_linux_mount_table_lists_discs_and_sticks(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        "proc /proc proc rw 0 0\n"
        "/dev/sr0 /media/clerk/PATIENT\\040CD iso9660 ro 0 0\n"
        "/dev/sdb1 /run/media/clerk/USB vfat rw 0 0\n"
        "tmpfs /run tmpfs rw 0 0\n"
    )
    found = linux_candidates(str(mounts))
    assert [(str(c.path), c.kind) for c in found] == [
        ("/media/clerk/PATIENT CD", "cdrom"),
        ("/run/media/clerk/USB", "removable"),
    ]
    assert linux_candidates(str(tmp_path / "missing")) == []


def test_mac_volumes_skip_the_boot_volume_link(tmp_path: Path) -> None:
    (tmp_path / "PATIENT_CD").mkdir()
    (tmp_path / "Macintosh HD").symlink_to("/")
    assert [c.label for c in mac_candidates(str(tmp_path))] == ["PATIENT_CD"]
