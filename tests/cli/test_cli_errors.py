"""Every failing command says one `gearview: error:` line on stderr and exits per SPEC §3;
library log lines and warnings go to the log file (and the terminal only with -v)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from factory import make_ct
from peers.tools import free_port

from gearview.cli import main
from gearview.config import load_config, save_config

EXIT_PEER = 5


def _one_error_line(err: str) -> str:
    assert err.count("\n") == 1, err
    assert err.startswith("gearview: error: ")
    assert "pynetdicom" not in err and "Traceback" not in err
    return err


@contextmanager
def _listener(behaviour: str) -> Iterator[int]:
    """A TCP port that accepts and then stays silent ("silent") or hangs up ("hangup")."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            if behaviour == "hangup":
                conn.close()
            else:
                held.append(conn)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in held:
            conn.close()
        server.close()


def _fast_timeouts(home) -> None:
    config = load_config(home)
    config.client.acse_timeout = 1.0
    save_config(home, config)


def test_echo_to_a_closed_port(home, capsys):
    assert main(["echo", f"NOBODY@127.0.0.1:{free_port()}"]) == EXIT_PEER
    out, err = capsys.readouterr()
    assert "refused the connection" in _one_error_line(err)
    assert out == ""
    logged = (home.logs_dir / "gearview.log").read_text()
    assert "TCP Initialisation Error" in logged  # pynetdicom's line: in the file, not on stderr


def test_library_lines_reach_the_terminal_only_with_v(home, capsys):
    assert main(["-v", "echo", f"NOBODY@127.0.0.1:{free_port()}"]) == EXIT_PEER
    err = capsys.readouterr().err
    assert "pynetdicom" in err and err.rstrip().splitlines()[-1].startswith("gearview: error: ")


def test_a_peer_that_never_answers_is_not_called_refused(home, capsys):
    _fast_timeouts(home)
    with _listener("silent") as port:
        assert main(["echo", f"SILENT@127.0.0.1:{port}"]) == EXIT_PEER
    err = _one_error_line(capsys.readouterr().err)
    assert "did not answer the association request within 1 s" in err
    assert "refused" not in err


def test_a_peer_that_hangs_up_is_named_so(home, capsys):
    _fast_timeouts(home)
    with _listener("hangup") as port:
        assert main(["echo", f"HANGUP@127.0.0.1:{port}"]) == EXIT_PEER
    err = _one_error_line(capsys.readouterr().err)
    assert "closed the connection without answering" in err


@pytest.mark.parametrize("command", [["find", "NOSUCH"], ["send", "NOSUCH", "1.2.3"]])
def test_usage_errors_stay_exit_1(home, capsys, command):
    assert main(command) == 1
    assert "unknown node" in _one_error_line(capsys.readouterr().err)


def test_import_warnings_name_the_file_not_the_library(home, tmp_path, capsys):
    ds = make_ct("1.2.3", "1.2.3.4", sop_uid="1.2.3.4.5.x")  # a UID pydicom warns about
    ds.save_as(tmp_path / "IM0001", enforce_file_format=True)
    assert main(["import", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "imported 1 instance" in out
    assert "site-packages" not in err and "UserWarning" not in err
    assert any(line.startswith("warning: ") and "IM0001" in line and "1.2.3.4.5.x" in line
               for line in err.splitlines())
