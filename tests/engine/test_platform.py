"""The platform layer: which file I/O a cache gets, and no OS-specific code outside the layer."""

from __future__ import annotations

import ast
import socket
import sys
from pathlib import Path

import pytest
from pydicom.uid import CTImageStorage

from gearview.cli import main
from gearview.errors import ConfigError
from gearview.net import dimse
from gearview.platform import IO_ENV, FileIO, choose_file_io
from gearview.store import Cache

GEARVIEW = Path(__file__).resolve().parents[2] / "gearview"
#: Modules that exist on POSIX systems only (or behave so differently elsewhere
#: that using them is a platform decision).
UNIX_ONLY = {"fcntl", "resource", "termios", "pwd", "grp", "tty", "pty", "posix"}


def test_portable_file_io_when_asked(home, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(IO_ENV, "portable")
    cache = Cache(home)
    try:
        assert type(cache.io) is FileIO
        assert cache.reserve_spool_files() is False
    finally:
        cache.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux file I/O")
def test_linux_file_io_by_default_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    from gearview.platform.linux import LinuxIO

    monkeypatch.delenv(IO_ENV, raising=False)
    assert isinstance(choose_file_io(), LinuxIO)
    monkeypatch.setenv(IO_ENV, " Linux ")
    assert isinstance(choose_file_io(), LinuxIO)


def test_unknown_file_io_is_refused_in_one_line(
    home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(IO_ENV, "fast")
    with pytest.raises(ConfigError, match="GEARVIEW_IO: must be one of auto, portable, linux"):
        Cache(home)
    assert main(["ls"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gearview: error: GEARVIEW_IO: must be one of")
    assert err.count("\n") == 1


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_unix_only_module_outside_the_platform_layer() -> None:
    """Not even inside a function: the layer is the one place that knows about the OS."""
    found = {
        str(path.relative_to(GEARVIEW)): sorted(_imports(path) & UNIX_ONLY)
        for path in GEARVIEW.rglob("*.py")
        if "platform" not in path.relative_to(GEARVIEW).parts
    }
    assert {path: names for path, names in found.items() if names} == {}


class _NoSendmsg(socket.socket):
    """A socket as Windows has them: no sendmsg."""

    @property
    def sendmsg(self):  # noqa: ANN201 - hides the method
        raise AttributeError("sendmsg")


@pytest.mark.parametrize("max_pdu", [0, 4096, 16384])
def test_dimse_messages_go_out_without_sendmsg(max_pdu: int) -> None:
    left, right = socket.socketpair()
    sender = _NoSendmsg(fileno=left.detach())
    assert not hasattr(sender, "sendmsg")
    command = dimse.store_command(CTImageStorage, "1.2.3.4", 7)
    data = bytes(range(256)) * 300
    try:
        dimse.write_message(sender, 1, command, data, max_pdu)
        received = dimse.read_message(right, timeout=10)
    finally:
        sender.close()
        right.close()
    assert received.data == data
    assert received.context_id == 1
    assert received.command.MessageID == 7
