"""Presentation contexts built from what is being sent or retrieved.

Sending: for each SOP class in the batch we propose its stored compressed
syntaxes each in a context of their own (so a peer that accepts them gets
the bytes as stored) plus one uncompressed context (Explicit and Implicit VR
Little Endian) to fall back on by decompressing. A SOP class's contexts stay
together; batches needing more than 128 contexts are split across
associations (PS3.8: at most 128 presentation contexts per association).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom import uid
from pynetdicom import build_context, build_role
from pynetdicom import sop_class as sc
from pynetdicom.presentation import PresentationContext

from gearview.conformance import TRANSFER_SYNTAXES, storage_sop_classes

MAX_CONTEXTS = 128
NATIVE = (uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian)

#: Storage classes a C-GET proposes first (the common modalities), then the rest up to the limit.
COMMON_STORAGE = (
    sc.CTImageStorage,
    sc.MRImageStorage,
    sc.ComputedRadiographyImageStorage,
    sc.DigitalXRayImageStorageForPresentation,
    sc.DigitalXRayImageStorageForProcessing,
    sc.DigitalMammographyXRayImageStorageForPresentation,
    sc.UltrasoundImageStorage,
    sc.UltrasoundMultiFrameImageStorage,
    sc.SecondaryCaptureImageStorage,
    sc.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    sc.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    sc.MultiFrameTrueColorSecondaryCaptureImageStorage,
    sc.XRayAngiographicImageStorage,
    sc.EnhancedCTImageStorage,
    sc.EnhancedMRImageStorage,
    sc.PositronEmissionTomographyImageStorage,
    sc.NuclearMedicineImageStorage,
    sc.RTImageStorage,
    sc.EncapsulatedPDFStorage,
    sc.BasicTextSRStorage,
    sc.EnhancedSRStorage,
    sc.ComprehensiveSRStorage,
    sc.KeyObjectSelectionDocumentStorage,
    sc.GrayscaleSoftcopyPresentationStateStorage,
    sc.BreastTomosynthesisImageStorage,
    sc.XRayRadiofluoroscopicImageStorage,
)


@dataclass
class ContextBatch:
    """The contexts of one association and the SOP classes they cover."""

    contexts: list[PresentationContext] = field(default_factory=list)
    sop_classes: set[str] = field(default_factory=set)


def contexts_for_class(
    sop_class: str, syntaxes: Iterable[str], lossy: bool = False
) -> list[PresentationContext]:
    """One context per stored non-native syntax, plus one native (uncompressed LE) context,
    plus (with `lossy`) lossy JPEG 2000 for a peer that takes nothing else."""
    stored = list(dict.fromkeys(str(ts) for ts in syntaxes))
    contexts = [build_context(sop_class, [ts]) for ts in stored if ts not in NATIVE]
    native = [ts for ts in stored if ts in NATIVE]
    native += [ts for ts in NATIVE if ts not in native]
    contexts.append(build_context(sop_class, native))
    if lossy and uid.JPEG2000 not in stored:
        contexts.append(build_context(sop_class, [uid.JPEG2000]))
    return contexts


def plan_send(
    pairs: Iterable[tuple[str, str]], limit: int = MAX_CONTEXTS, lossy: bool = False
) -> list[ContextBatch]:
    """Split (SOP class, stored transfer syntax) pairs into association-sized batches."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for sop_class, ts in pairs:
        if ts not in by_class[sop_class]:
            by_class[sop_class].append(ts)
    batches: list[ContextBatch] = []
    current = ContextBatch()
    for sop_class, syntaxes in by_class.items():
        contexts = contexts_for_class(sop_class, syntaxes, lossy)[:limit]
        if current.contexts and len(current.contexts) + len(contexts) > limit:
            batches.append(current)
            current = ContextBatch()
        current.contexts.extend(contexts)
        current.sop_classes.add(sop_class)
    if current.contexts:
        batches.append(current)
    return batches


def get_contexts(
    query_model: str, sop_classes: Iterable[str] | None = None
) -> tuple[list[PresentationContext], list]:
    """C-GET: the Q/R context plus storage contexts we accept as SCP, with role selection."""
    wanted = list(dict.fromkeys(str(s) for s in (sop_classes or ())))
    if not wanted:
        known = storage_sop_classes()
        wanted = list(dict.fromkeys([*COMMON_STORAGE, *known]))
    wanted = wanted[: MAX_CONTEXTS - 1]
    contexts = [build_context(query_model)]
    contexts += [build_context(s, list(TRANSFER_SYNTAXES)) for s in wanted]
    roles = [build_role(s, scp_role=True) for s in wanted]
    return contexts, roles
