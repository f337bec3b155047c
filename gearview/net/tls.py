"""TLS contexts for DICOM over TLS (PS3.15 B.10/B.12 profiles: TLS 1.2 or newer only)."""

from __future__ import annotations

import ssl

from gearview.config import Config, TlsConfig
from gearview.errors import ConfigError


def server_context(tls: TlsConfig) -> ssl.SSLContext:
    """The SSLContext our SCP wraps accepted sockets with; never falls back below TLS 1.2."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert, tls.key)
        if tls.ca:
            context.load_verify_locations(cafile=tls.ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("server.tls", f"cannot load the certificate, key or CA: {exc}") from None
    if tls.require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
    elif tls.ca:
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(config: Config) -> ssl.SSLContext:
    """The SSLContext our SCUs connect with: TLS 1.2+, peers checked against the configured CA.

    The station's own certificate and key (server.tls) double as the client
    certificate, so a peer that requires mutual TLS accepts us.
    """
    tls = config.server.tls
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    try:
        if tls.ca:
            context.load_verify_locations(cafile=tls.ca)
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
        if tls.cert and tls.key:
            context.load_cert_chain(tls.cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("server.tls", f"cannot load the certificate, key or CA: {exc}") from None
    context.verify_mode = ssl.CERT_REQUIRED
    return context
