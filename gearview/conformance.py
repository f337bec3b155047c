"""The SOP classes and transfer syntaxes gearview supports (SPEC §2), built
from pydicom's and pynetdicom's tables so no UID is ever retyped."""

from __future__ import annotations

from functools import cache

from pydicom import uid
from pydicom.uid import UID
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

UNCOMPRESSED = (
    uid.ImplicitVRLittleEndian,
    uid.ExplicitVRLittleEndian,
    uid.ExplicitVRBigEndian,
)
DEFLATED = (uid.DeflatedExplicitVRLittleEndian,)
COMPRESSED_IMAGE = (
    uid.JPEGBaseline8Bit,
    uid.JPEGExtended12Bit,
    uid.JPEGLossless,
    uid.JPEGLosslessSV1,
    uid.JPEGLSLossless,
    uid.JPEGLSNearLossless,
    uid.JPEG2000Lossless,
    uid.JPEG2000,
    uid.RLELossless,
)
VIDEO = tuple(UID(u) for u in uid.MPEGTransferSyntaxes)

#: Every transfer syntax of SPEC §2.3, in order of preference when we propose.
TRANSFER_SYNTAXES: tuple[UID, ...] = UNCOMPRESSED[1:2] + UNCOMPRESSED[:1] + UNCOMPRESSED[2:] + (
    DEFLATED + COMPRESSED_IMAGE + VIDEO
)

LOSSY = frozenset({uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLSNearLossless, uid.JPEG2000})

QR_FIND = StudyRootQueryRetrieveInformationModelFind
QR_MOVE = StudyRootQueryRetrieveInformationModelMove
QR_GET = StudyRootQueryRetrieveInformationModelGet
VERIFICATION = Verification


@cache
def storage_sop_classes() -> tuple[UID, ...]:
    """Every storage SOP class pynetdicom knows (our SCP accepts all by default)."""
    return tuple(UID(cx.abstract_syntax) for cx in AllStoragePresentationContexts)


def sop_class_name(sop_class_uid: str) -> str:
    """Human name of a SOP class (falls back to the UID for private ones)."""
    name = UID(sop_class_uid).name
    return name or str(sop_class_uid)


def transfer_syntax_name(ts_uid: str) -> str:
    name = UID(ts_uid).name
    return name or str(ts_uid)
