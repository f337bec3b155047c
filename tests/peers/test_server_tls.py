"""DICOM over TLS (RELIABILITY.md 11): TLS 1.2+ only, client certificates, no plain fallback."""

from __future__ import annotations

import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from gearview.config import TlsConfig
from peers.scp import AET, running_server
from peers.tools import require

pytestmark = pytest.mark.peers


def _cert(folder: Path, name: str, ca: tuple[Path, Path] | None = None) -> tuple[Path, Path]:
    """A key and certificate, self-signed or signed by `ca` (openssl CLI)."""
    openssl = require("openssl")
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    if ca is None:
        cmd = [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            f"/CN={name}",
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        return key, cert
    csr = folder / f"{name}.csr"
    subprocess.run(
        [
            openssl,
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            f"/CN={name}",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            openssl,
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca[1]),
            "-CAkey",
            str(ca[0]),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-days",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca = _cert(folder, "ca")
    other_ca = _cert(folder, "other-ca")
    return {
        "ca": ca,
        "server": _cert(folder, "server", ca),
        "client": _cert(folder, "client", ca),
        "stranger": _cert(folder, "stranger", other_ca),
    }


def _tls(pki, require_client_cert: bool) -> TlsConfig:
    key, cert = pki["server"]
    return TlsConfig(
        enabled=True,
        cert=str(cert),
        key=str(key),
        ca=str(pki["ca"][1]),
        require_client_cert=require_client_cert,
    )


def _client_context(pki, who: str | None, maximum: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(pki["ca"][1]))
    if maximum is not None:
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    if who:
        key, cert = pki[who]
        context.load_cert_chain(str(cert), str(key))
    return context


def _echo(port: int, context: ssl.SSLContext | None) -> bool:
    ae = AE(ae_title="TLSSCU")
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = 5
    tls_args = (context, "localhost") if context else None
    assoc = ae.associate("127.0.0.1", port, ae_title=AET, tls_args=tls_args)
    if not assoc.is_established:
        return False
    status = assoc.send_c_echo()
    assoc.release()
    return bool(status) and status.Status == 0


def test_mutual_tls_echo_and_refusals(home, pki):
    with running_server(home, tls=_tls(pki, require_client_cert=True)) as (_, port, _):
        assert _echo(port, _client_context(pki, "client"))
        assert not _echo(port, _client_context(pki, "stranger"))  # untrusted client cert
        assert not _echo(port, _client_context(pki, None))  # no client cert
        assert not _echo(port, None)  # plain DICOM on the TLS port
        assert _echo(port, _client_context(pki, "client"))


def test_tls_below_1_2_is_refused(home, pki):
    from gearview.net.tls import server_context

    assert server_context(_tls(pki, False)).minimum_version == ssl.TLSVersion.TLSv1_2
    with running_server(home, tls=_tls(pki, require_client_cert=False)) as (_, port, _):
        old = _client_context(pki, None, maximum=ssl.TLSVersion.TLSv1_1)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with pytest.raises((ssl.SSLError, OSError)):
                with old.wrap_socket(raw, server_hostname="localhost") as tls:
                    tls.recv(1)
        assert _echo(port, _client_context(pki, None))


def test_gearview_client_context_talks_to_our_server(home, pki):
    from gearview.config import load_config
    from gearview.net.tls import client_context

    config = load_config(home)
    key, cert = pki["client"]
    config.server.tls = TlsConfig(enabled=True, cert=str(cert), key=str(key), ca=str(pki["ca"][1]))
    with running_server(home, tls=_tls(pki, require_client_cert=True)) as (_, port, _):
        assert _echo(port, client_context(config))
