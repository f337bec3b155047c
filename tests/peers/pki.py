"""A throw-away PKI for TLS tests: two CAs and certificates for 127.0.0.1 (openssl)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


#: A new P-256 key, unencrypted.
NEW_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _make_ca(folder: Path, name: str) -> None:
    _openssl(
        "req",
        "-x509",
        *NEW_KEY,
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        cwd=folder,
    )


def _issue(folder: Path, ca: str, name: str) -> None:
    _openssl(
        "req",
        *NEW_KEY,
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={name}",
        cwd=folder,
    )
    (folder / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.pem",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        cwd=folder,
    )


def make_pki(folder: Path) -> Path:
    """testca and otherca, and `peer` and `station` certificates issued by testca."""
    _make_ca(folder, "testca")
    _make_ca(folder, "otherca")
    _issue(folder, "testca", "peer")
    _issue(folder, "testca", "station")
    return folder
