"""Regenerate the user guide's screenshots (docs/images/*.png).

    .venv/bin/python tools/screenshots.py [--out docs/images]

Runs the real main window offscreen (or on $DISPLAY, e.g. under xvfb-run)
over a throw-away home filled with synthetic studies (tests/factory.py, no
real patient data), with a second in-process gearview station on a free
loopback port playing the PACS, and grabs each screen the guide shows.
Nothing outside the temporary folders is touched.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the synthetic study factory

import pydicom  # noqa: E402
from factory import write_series  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402
from PySide6.QtCore import QDate, QEventLoop, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication, QWidget  # noqa: E402

from gearview.config import Node, load_config, save_config  # noqa: E402
from gearview.events import EventBus  # noqa: E402
from gearview.home import Home  # noqa: E402
from gearview.jobqueue import SEND  # noqa: E402
from gearview.net.tasks import send_params  # noqa: E402
from gearview.station import Station  # noqa: E402

#: (name, patient ID, birth date, sex, study date, modality, description, series, images)
STUDIES = (
    ("JONES^MARY", "MRN1001", "19800101", "F", "20240302", "CT", "CT chest", 2, 4),
    ("JONES^MARY", "MRN1001", "19800101", "F", "20231114", "CR", "Chest PA", 1, 1),
    ("NGUYEN^VAN AN", "MRN1002", "19560723", "M", "20240301", "MR", "MR knee left", 3, 3),
    ("SMITH^JO", "MRN1003", "19911230", "O", "20240229", "US", "US abdomen", 1, 2),
    ("GARCIA^LUCIA", "MRN1004", "20010415", "F", "20240302", "CT", "CT head", 1, 3),
)
REMOTE = (("OKAFOR^CHIDI", "MRN2001", "19721008", "M", "20240301", "CT", "CT abdomen", 2, 3),)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_until(test: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise TimeoutError("the screen did not get ready")
        wait(50)


def fill(station: Station, folder: Path, studies: tuple) -> list[str]:
    uids = []
    for name, pid, birth, sex, date, modality, description, series, images in studies:
        study = generate_uid()
        uids.append(study)
        for number in range(1, series + 1):
            for path in write_series(
                folder / f"{study[-8:]}-{number}", images, study_uid=study, patient_name=name,
                patient_id=pid, birth_date=birth, sex=sex, study_date=date, modality=modality,
                series_number=number, accession=f"A{pid[-4:]}{number}", rows=32, cols=32,
            ):
                ds = pydicom.dcmread(path)
                ds.StudyDescription = description
                ds.SeriesDescription = f"{description} {number}"
                ds.save_as(path)
                station.cache.add_file(path)
    return uids


def grab(widget: QWidget, out: Path, name: str) -> None:
    wait(300)
    path = out / name
    if not widget.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def pacs_station(root: Path, our_port: int) -> Station:
    home = Home(root / "pacs").ensure()
    config = load_config(home)
    config.server.ae_title, config.server.port = "PACS", free_port()
    config.server.bind_address = "127.0.0.1"
    config.nodes = [Node("STATION", "GEARVIEW", "127.0.0.1", our_port)]
    save_config(home, config)
    station = Station(home, config, EventBus()).open()  # its events are not the window's
    fill(station, root / "remote", REMOTE + STUDIES[:1])
    station.start_server()
    return station


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    args.out.mkdir(parents=True, exist_ok=True)
    app = QApplication([sys.argv[0]])
    app.setApplicationName("gearview")
    from gearview.ui.main_window import MainWindow

    with tempfile.TemporaryDirectory(prefix="gv-shots-") as tmp:
        root = Path(tmp)
        home = Home(root / "home").ensure()
        config = load_config(home)
        config.server.port, config.server.bind_address = free_port(), "127.0.0.1"
        pacs = pacs_station(root, config.server.port)
        config.nodes = [
            Node("PACS", "PACS", "127.0.0.1", pacs.config.server.port),
            Node("ARCHIVE", "ARCHIVE", "127.0.0.1", free_port(), roles=["send"], timeout=2),
        ]
        config.client.default_send_destination = "PACS"
        save_config(home, config)
        station = Station(home, config).open()
        local = fill(station, root / "local", STUDIES)
        window = MainWindow(station)
        window.resize(1280, 760)
        window.show()
        window.start_server()
        try:
            shoot(app, window, local, args.out, root)
        finally:
            window.close()
            pacs.close()
    return 0


def shoot(app: QApplication, window, local: list[str], out: Path, root: Path) -> None:
    study_list = window.study_list
    wait_until(lambda: study_list.model.rowCount() == len(STUDIES) and not study_list.loading)
    wait_until(lambda: window.server_status.running)

    # A send that fails (the archive is switched off) and one that arrives.
    jobs = window.station.jobs
    jobs.submit(SEND, "Send JONES, MARY to PACS", send_params("PACS", local[:1]))
    wait_until(lambda: all(j.finished for j in jobs.jobs()))
    jobs.submit(SEND, "Send NGUYEN, VAN AN to ARCHIVE", send_params("ARCHIVE", local[2:3]))
    wait_until(lambda: all(j.finished for j in jobs.jobs()))
    wait_until(window.notifier.notice.isVisible)
    study_list.select_study(local[0])
    grab(window, out, "main-window.png")

    study_list.set_grouped(True)
    tree = study_list.tree
    tree.expandAll()
    wait(800)
    tree.expandAll()
    grab(window, out, "grouped-by-patient.png")
    study_list.set_grouped(False)

    from gearview.ui.edit_dialog import open_edit_dialog

    study_list.select_study(local[0])
    open_edit_dialog(window, [local[0]])
    wait_until(lambda: getattr(window, "_edit_dialog", None) is not None)
    dialog = window._edit_dialog
    dialog.edits["PatientName"].set_value("JONES^MARIE")
    dialog.edits["PatientBirthDate"].setFocus()
    dialog.edits["PatientBirthDate"].set_value("19800231")
    dialog.reason.setEditText("name misspelled at the modality")
    grab(dialog, out, "edit-study.png")
    dialog.reject()

    panel = window.query_panel
    window.tabs.setCurrentWidget(panel)
    panel.date_preset.setCurrentIndex(panel.date_preset.findData("custom"))
    panel.date_from.setDate(QDate(2024, 2, 1))
    panel.date_to.setDate(QDate(2024, 3, 31))
    panel.search()
    wait_until(lambda: not panel.searching)
    if panel.table.rowCount() < 2:
        raise RuntimeError(f"the query found {panel.table.rowCount()}: {panel.status.text()}")
    wait(500)
    grab(window, out, "query-retrieve.png")
    window.tabs.setCurrentWidget(study_list)

    from gearview.ui.import_dialog import open_import_dialog

    disc = root / "usb-stick"
    write_series(disc, 4, patient_name="OUTSIDE^PAT", patient_id="EXT-77", study_date="20240220",
                 rows=32, cols=32)
    importer = open_import_dialog(window, str(disc))
    wait_until(lambda: importer.preview is not None)
    wait(800)
    grab(importer, out, "import.png")
    importer.reject()

    from gearview.ui.burn_dialog import open_burn_dialog

    burner = open_burn_dialog(window, local[:2])
    wait_until(lambda: burner.planned is not None)
    grab(burner, out, "burn.png")
    burner.reject()

    window.action("show-tags").trigger()
    wait_until(lambda: window.tag_editor.record is not None and not window.tag_editor.loading)
    dock = window.tag_editor.parentWidget()
    window.resizeDocks([dock], [520], Qt.Orientation.Horizontal)
    grab(window, out, "tags.png")
    dock.hide()

    window.theme.choose("dark")
    grab(window, out, "dark-mode.png")
    window.theme.choose("system")
    app.processEvents()


if __name__ == "__main__":
    raise SystemExit(main())
