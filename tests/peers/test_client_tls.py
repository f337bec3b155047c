"""Echo and send over TLS to storescp with a test CA made at run time; a wrong CA is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from factory import write_series

from gearview.cli import main
from gearview.config import Config, load_config, save_config
from gearview.errors import NetworkError
from gearview.net import client
from gearview.net.send import SendItem, send_items
from peers.pki import make_pki
from peers.storescp import StoreSCP

pytestmark = pytest.mark.peers


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_scp(pki: Path, tmp_path: Path):
    """storescp with TLS, trusting only the test CA and requiring our client certificate."""
    scp = StoreSCP(
        tmp_path / "out",
        extra=[
            "+tls",
            str(pki / "peer.key"),
            str(pki / "peer.pem"),
            "+cf",
            str(pki / "testca.pem"),
        ],
    )
    with scp:
        yield scp


def _config(pki: Path, ca: str = "testca") -> Config:
    config = Config()
    config.server.tls.cert = str(pki / "station.pem")
    config.server.tls.key = str(pki / "station.key")
    config.server.tls.ca = str(pki / f"{ca}.pem")
    return config


def test_echo_over_tls(pki, tls_scp):
    assert client.echo(tls_scp.node(tls=True), _config(pki)) > 0


def test_send_over_tls(pki, tls_scp, tmp_path):
    files = write_series(tmp_path / "in", 3)
    result = send_items(
        tls_scp.node(tls=True), _config(pki), [SendItem.from_path(f) for f in files]
    )
    assert result.ok and result.count("success") == 3
    assert len(tls_scp.received()) == 3


def test_wrong_ca_is_refused_clearly(pki, tls_scp):
    with pytest.raises(NetworkError, match="certificate of STRICT .* is not trusted"):
        client.echo(tls_scp.node(tls=True), _config(pki, ca="otherca"))


def test_plain_client_to_tls_peer_fails_cleanly(pki, tls_scp):
    node = tls_scp.node(tls=False, timeout=3)
    with pytest.raises(NetworkError):
        client.echo(node, _config(pki))


def test_cli_echo_tls_node(pki, tls_scp, home, capsys):
    config = _config(pki)
    config.nodes = [tls_scp.node("SECURE", tls=True)]
    save_config(home, config)
    assert load_config(home).nodes[0].tls
    assert main(["echo", "SECURE"]) == 0
    assert "C-ECHO OK" in capsys.readouterr().out


def test_cli_untrusted_certificate_is_one_line_without_traceback(pki, tls_scp, home, capsys):
    config = _config(pki, ca="otherca")
    config.nodes = [tls_scp.node("SECURE", tls=True)]
    save_config(home, config)
    assert main(["echo", "SECURE"]) == 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gearview: error: TLS: the certificate")
    assert "Traceback" not in (home.logs_dir / "gearview.log").read_text()
