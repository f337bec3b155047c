"""Opening client associations: one place for timeouts, PDU size, TLS,
TCP_NODELAY and turning pynetdicom's silent failures into readable errors.

pynetdicom only *logs* why a connection failed (refused, timed out, TLS
handshake error) and hands back an unestablished association. We take that
reason from its log line (`pynetdicom_compat.CONNECT_ERRORS`) and watch the
association's events, so the user reads "refused the connection", "the
certificate is not trusted" or "did not answer the association request
within 30 s" - never a refusal where the peer only stayed silent.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator, Sequence

from pydicom.uid import UID
from pynetdicom import AE, Association, evt
from pynetdicom.pdu_primitives import A_ABORT, A_ASSOCIATE, A_P_ABORT
from pynetdicom.presentation import PresentationContext

from gearview import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from gearview.config import Config, Node
from gearview.errors import NetworkError
from gearview.net.pynetdicom_compat import CONNECT_ERRORS

log = logging.getLogger(__name__)


def timeouts(node: Node, config: Config) -> tuple[float, float, float]:
    """(acse, dimse, network) timeouts: the node's own timeout overrides the client defaults."""
    client = config.client
    if node.timeout > 0:
        return node.timeout, node.timeout, node.timeout
    return client.acse_timeout, client.dimse_timeout, client.network_timeout


def make_ae(node: Node, config: Config) -> AE:
    """An AE configured as this station (our AE title, implementation UID, timeouts)."""
    ae = AE(ae_title=config.server.ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    acse, dimse, network = timeouts(node, config)
    ae.acse_timeout = acse
    ae.dimse_timeout = dimse
    ae.network_timeout = network
    ae.connection_timeout = acse
    ae.maximum_pdu_size = config.client.max_pdu
    return ae


def _set_nodelay(event: evt.Event) -> None:
    """Nagle's algorithm stalls every small DIMSE response by ~40 ms (FACTS)."""
    sock = event.assoc.dul.socket.socket if event.assoc.dul.socket else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Attempt:
    """What happened while associating: connected at all, and what the peer answered."""

    def __init__(self) -> None:
        self.connected = False
        self.answers: list[object] = []

    def handlers(self) -> list[tuple]:
        return [(evt.EVT_CONN_OPEN, self._opened), (evt.EVT_ACSE_RECV, self._received)]

    def _opened(self, event: evt.Event) -> None:
        self.connected = True

    def _received(self, event: evt.Event) -> None:
        self.answers.append(event.primitive)

    def answered(self, kind: type) -> bool:
        return any(isinstance(a, kind) for a in self.answers)


def _describe_failure(assoc: Association, node: Node, attempt: _Attempt,
                      acse_timeout: float) -> NetworkError:
    where = f"{node.name} ({node.address})"
    if assoc.is_rejected:
        reason = ""
        primitive = assoc.acceptor.primitive if assoc.acceptor else None
        if primitive is not None and primitive.result_str is not None:
            reason = f": {primitive.reason_str}" if primitive.reason_str else ""
        return NetworkError(
            f"{where} rejected the association{reason}",
            hint="check that the node knows our AE title and that its AE title is spelt right",
        )
    detail = CONNECT_ERRORS.pop(assoc.dul.ident)
    if not attempt.connected:
        return _connect_failure(where, detail)
    if assoc.rejected_contexts and not assoc.accepted_contexts:
        # pynetdicom aborts an association on which the peer accepted no context
        offered = sorted({UID(cx.abstract_syntax).name for cx in assoc.rejected_contexts})
        return NetworkError(
            f"{where} does not offer {', '.join(offered)}",
            hint="check the node's roles and the services it provides",
        )
    if attempt.answered(A_ABORT):
        return NetworkError(
            f"{where} aborted the association request",
            hint="the peer refused us (does it know our AE title?); check its logs",
        )
    if attempt.answered(A_P_ABORT) and not attempt.answered(A_ASSOCIATE):
        return NetworkError(
            f"{where} closed the connection without answering the association request",
            hint="is that port a DICOM service, and does the node expect TLS?",
        )
    return NetworkError(
        f"{where} did not answer the association request within {acse_timeout:g} s",
        hint="the port is open but the peer stayed silent; check its logs, "
        "or raise the node's timeout",
    )


def _connect_failure(where: str, detail: str) -> NetworkError:
    """The TCP or TLS connection itself failed (pynetdicom's logged reason in `detail`)."""
    lowered = detail.lower()
    if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
        return NetworkError(
            f"TLS: the certificate of {where} is not trusted ({detail})",
            hint="check the CA configured for TLS, or the node's certificate",
        )
    if "ssl" in lowered or "tls" in lowered:
        return NetworkError(
            f"TLS handshake with {where} failed ({detail})",
            hint="check that the node expects TLS and our certificates",
        )
    if "refused" in lowered:
        return NetworkError(
            f"{where} refused the connection",
            hint="is the peer running and listening on that port?",
        )
    if "timed out" in lowered:
        return NetworkError(
            f"{where} did not answer (the connection timed out)",
            hint="check the host, port and firewall, or raise the node's timeout",
        )
    if detail:
        return NetworkError(f"cannot connect to {where}: {detail}")
    return NetworkError(
        f"cannot connect to {where}",
        hint="check the host, port and firewall, or raise the node's timeout",
    )


def open_association(
    node: Node,
    config: Config,
    contexts: Sequence[PresentationContext],
    *,
    ext_neg: list | None = None,
    evt_handlers: list | None = None,
) -> Association:
    """Associate with `node` proposing `contexts`; raise NetworkError when not established."""
    ae = make_ae(node, config)
    ae.requested_contexts = list(contexts)
    tls_args = None
    if node.tls:
        from gearview.net.tls import client_context

        tls_args = (client_context(config), node.host)
    attempt = _Attempt()
    handlers = [(evt.EVT_CONN_OPEN, _set_nodelay), *attempt.handlers(), *(evt_handlers or [])]
    assoc = ae.associate(
        node.host,
        node.port,
        ae_title=node.ae_title,
        max_pdu=config.client.max_pdu,
        ext_neg=ext_neg,
        tls_args=tls_args,
        evt_handlers=handlers,
    )
    if not assoc.is_established:
        error = _describe_failure(assoc, node, attempt, ae.acse_timeout)
        log.info("association with %s failed: %s", node.address, error.message)
        raise error
    return assoc


@contextlib.contextmanager
def association(
    node: Node, config: Config, contexts: Sequence[PresentationContext], **kwargs: object
) -> Iterator[Association]:
    """`open_association` released on exit (aborted if the block raised)."""
    assoc = open_association(node, config, contexts, **kwargs)  # type: ignore[arg-type]
    try:
        yield assoc
    except BaseException:
        assoc.abort()
        raise
    else:
        if assoc.is_established:
            assoc.release()


def lost(assoc: Association, node: Node, what: str, aborted: bool = False) -> NetworkError:
    """The error for a peer that vanished or aborted during `what`.

    The empty response reaches us a moment before the reactor marks the
    association aborted, so wait briefly to tell the two apart.
    """
    deadline = time.monotonic() + 1.0
    while not aborted and not assoc.is_aborted and assoc.is_established:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if aborted or assoc.is_aborted:
        return NetworkError(
            f"{node.name} aborted the association during {what}",
            hint="the peer refused the request (does it know our AE title?) "
            "or stopped; check its logs",
        )
    return NetworkError(
        f"{node.name} stopped answering during {what}",
        hint="the peer went away or timed out; retry later",
    )
