"""The station's de-identification key and the keyed mappings made from it.

Every UID of a de-identified copy is an HMAC-SHA256 of the original under a
secret kept in the home folder (mode 0600): the same original UID always
becomes the same new UID on this station, so a prior exported next week
links up with today's copy, yet nobody without the key can compute the
mapping from a list of candidate UIDs. Generated pseudonyms come from the
same key. Losing the key only breaks that linkage (new copies get new UIDs);
it never exposes anything.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import stat
import uuid
from base64 import b32encode
from pathlib import Path

from gearview.errors import StoreError
from gearview.home import Home
from gearview.store.atomic import fsync_dir, os_error_to_store_error

log = logging.getLogger(__name__)

KEY_FILE = "deid.key"
KEY_BYTES = 32
KEY_MODE = 0o600
#: Root of UUID-derived UIDs (PS3.5 B.2).
UUID_ROOT = "2.25."
PSEUDONYM_PREFIX = "GV"


def key_path(home: Home) -> Path:
    return home.root / KEY_FILE


def station_key(home: Home) -> bytes:
    """The key, created on first use (random, owner-only; two processes agree on one)."""
    path = key_path(home)
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    _create_key(path)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
            if os.name == "posix" and mode & 0o077:
                log.warning("the de-identification key was readable by others; now 0600")
                os.fchmod(fh.fileno(), KEY_MODE)
            data = fh.read(KEY_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise os_error_to_store_error(exc, "the de-identification key") from exc
    if len(data) != KEY_BYTES:
        raise StoreError(
            f"the de-identification key {path} is damaged ({len(data)} bytes)",
            hint="restore it from a backup; removing it makes new copies get new UIDs",
        )
    return data


def _create_key(path: Path) -> None:
    """Write the key to a private temporary file, then link it into place (never replaced)."""
    temp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, KEY_MODE)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)
        except FileExistsError:
            return  # another process made it first: use theirs
        except OSError:  # no hard links on this file system (FAT, some shares)
            if path.exists():
                return
            os.replace(temp, path)
        fsync_dir(path.parent)
        log.info("created the station's de-identification key")
    except OSError as exc:
        raise os_error_to_store_error(exc, "the de-identification key") from exc
    finally:
        temp.unlink(missing_ok=True)


class KeyedMapping:
    """Deterministic, keyed replacements: UIDs and generated pseudonyms."""

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._uids: dict[str, str] = {}

    def _digest(self, purpose: str, text: str) -> bytes:
        message = f"{purpose}\x00{text}".encode()
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def uid(self, original: str) -> str:
        """The new UID for `original` (a 2.25 UUID-derived UID, at most 44 characters)."""
        original = original.strip(" \x00")
        if not original:
            return original
        new = self._uids.get(original)
        if new is None:
            digest = self._digest("uid", original)
            new = UUID_ROOT + str(uuid.UUID(bytes=digest[:16], version=4).int)
            self._uids[original] = new
        return new

    def pseudonym_id(self, *identity: str) -> str:
        """A Patient ID for the identity (ID, issuer, ...): 'GV' and 12 base-32 characters."""
        digest = self._digest("patient", "\\".join(identity))
        return PSEUDONYM_PREFIX + b32encode(digest).decode("ascii")[:12]
