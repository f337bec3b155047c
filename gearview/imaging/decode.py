"""Open an instance's header once and decode its frames lazily, one at a time.

The header is parsed with large values deferred, so a 2 GB multi-frame file
costs a few milliseconds to open; each frame is decoded on demand by
pydicom 3's `pixel_array(path, index=N)`, which seeks to that frame (or its
fragments) only. Sizes are checked before anything is allocated, so absurd
Rows/Columns/frame counts give "cannot display" instead of a multi-GB array.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import get_decoder, pixel_array
from pydicom.tag import Tag
from pydicom.uid import UID

from gearview import conformance
from gearview.errors import GearviewError
from gearview.imaging.errors import CannotDisplayError, DecodeError
from gearview.store.header import read_instance_info

log = logging.getLogger(__name__)
# pydicom logs every failed decoder plugin with a traceback before raising; the
# DecodeError we raise already names each plugin's complaint, in one line.
logging.getLogger("pydicom.pixels.decoders.base").setLevel(logging.CRITICAL)

#: One decoded frame larger than this is refused (RELIABILITY 30).
MAX_FRAME_BYTES = 512 << 20
#: Header values larger than this stay on disk until asked for.
DEFER_SIZE = 64 << 10

PIXEL_DATA = Tag(0x7FE0, 0x0010)
FLOAT_PIXEL_DATA = (Tag(0x7FE0, 0x0008), Tag(0x7FE0, 0x0009))
UNDEFINED_LENGTH = 0xFFFFFFFF

#: Which package decodes which syntax, so an error can name what is missing.
PLUGIN_FOR = {
    **{
        ts: "pylibjpeg-libjpeg"
        for ts in (
            pydicom.uid.JPEGBaseline8Bit,
            pydicom.uid.JPEGExtended12Bit,
            pydicom.uid.JPEGLossless,
            pydicom.uid.JPEGLosslessSV1,
            pydicom.uid.JPEGLSLossless,
            pydicom.uid.JPEGLSNearLossless,
        )
    },
    pydicom.uid.JPEG2000Lossless: "pylibjpeg-openjpeg",
    pydicom.uid.JPEG2000: "pylibjpeg-openjpeg",
    pydicom.uid.RLELossless: "pylibjpeg-rle",
}


def decoder_available(transfer_syntax: UID) -> bool:
    """Whether pydicom has a decoder plugin with its dependencies installed for this syntax."""
    try:
        return get_decoder(transfer_syntax).is_available
    except NotImplementedError:  # no decoder exists for the syntax at all
        return False


@dataclass(frozen=True)
class ImageGeometry:
    """What the header says about the pixel matrix, checked for sanity."""

    rows: int
    columns: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    frames: int
    photometric: str
    planar: int

    @property
    def frame_bytes(self) -> int:
        """Bytes of one native frame (bit-packed for Bits Allocated 1)."""
        pixels = self.rows * self.columns * self.samples
        if self.photometric == "YBR_FULL_422" and self.samples == 3:
            pixels = self.rows * self.columns * 2  # native 4:2:2 keeps two samples per pixel
        if self.bits_allocated == 1:
            return (pixels + 7) // 8
        return pixels * (self.bits_allocated // 8)

    @property
    def decoded_bytes(self) -> int:
        """Bytes of one decoded frame as numpy holds it."""
        per = (
            1
            if self.bits_allocated <= 8
            else (2 if self.bits_allocated <= 16 else (4 if self.bits_allocated <= 32 else 8))
        )
        return self.rows * self.columns * self.samples * per


def geometry_of(ds: Dataset) -> ImageGeometry:
    """Read and sanity-check the Image Pixel module; raise CannotDisplayError if absurd."""
    try:
        rows = int(ds.get("Rows") or 0)
        columns = int(ds.get("Columns") or 0)
        samples = int(ds.get("SamplesPerPixel") or 1)
        bits_allocated = int(ds.get("BitsAllocated") or 0)
        bits_stored = int(ds.get("BitsStored") or bits_allocated)
        signed = int(ds.get("PixelRepresentation") or 0) == 1
        frames = int(ds.get("NumberOfFrames") or 1)
        planar = int(ds.get("PlanarConfiguration") or 0)
    except (TypeError, ValueError) as exc:
        raise CannotDisplayError(f"cannot display: unreadable image attributes ({exc})") from exc
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    if rows <= 0 or columns <= 0:
        raise CannotDisplayError(f"cannot display: Rows={rows}, Columns={columns}")
    if bits_allocated not in (1, 8, 16, 32, 64):
        raise CannotDisplayError(
            f"cannot display: Bits Allocated {bits_allocated} is not supported"
        )
    if not 0 < bits_stored <= bits_allocated:
        bits_stored = bits_allocated
    if samples not in (1, 3):
        raise CannotDisplayError(f"cannot display: Samples per Pixel {samples}")
    if frames < 1:
        frames = 1
    geo = ImageGeometry(
        rows, columns, samples, bits_allocated, bits_stored, signed, frames, photometric, planar
    )
    if geo.decoded_bytes > MAX_FRAME_BYTES:
        raise CannotDisplayError(
            f"cannot display: one frame would need {geo.decoded_bytes >> 20} MiB "
            f"({rows}×{columns}×{samples} at {bits_allocated} bits)",
            hint="the header's image size is implausible",
        )
    return geo


def read_header(path: Path) -> Dataset:
    """Parse a Part-10 file's header with big values (pixel data) left on disk."""
    try:
        return pydicom.dcmread(os.fspath(path), defer_size=DEFER_SIZE, force=True)
    except RecursionError as exc:
        raise CannotDisplayError("cannot display: sequences nested too deep") from exc
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise CannotDisplayError(f"cannot read file: {exc}") from exc


def transfer_syntax_of(ds: Dataset) -> UID:
    """The file's syntax, or the encoding pydicom found when the meta header lacks one."""
    meta = getattr(ds, "file_meta", None)
    found = str(meta.get("TransferSyntaxUID", "") or "") if meta is not None else ""
    if found:
        return UID(found)
    implicit, little = getattr(ds, "original_encoding", (False, True))
    if implicit:
        return pydicom.uid.ImplicitVRLittleEndian
    return (
        pydicom.uid.ExplicitVRLittleEndian
        if little is not False
        else pydicom.uid.ExplicitVRBigEndian
    )


def peek(ds: Dataset, tag: int) -> Any:
    """An element as stored, without reading a deferred value from disk.

    pydicom's `get_item` loads deferred values (it would pull 500 KB of pixel
    data per header into memory), so look in the dataset's mapping directly.
    """
    return ds._dict.get(Tag(tag))  # noqa: SLF001 - no public accessor avoids the deferred read


ITEM_TAG = b"\xfe\xff\x00\xe0"
SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"


def check_fragments(data: bytes) -> str:
    """Walk encapsulated Pixel Data items; '' if every item fits, else what is wrong.

    A fragment whose length field claims more than the data holds would make
    the reader allocate that much (2 GiB from a 1 KB file) before failing.
    """
    pos, size = 0, len(data)
    while pos + 8 <= size:
        tag = bytes(data[pos : pos + 4])
        if tag == SEQUENCE_DELIMITER:
            return ""
        if tag != ITEM_TAG:
            return f"encapsulated Pixel Data is corrupt at byte {pos} (no item tag)"
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if length == UNDEFINED_LENGTH or pos + 8 + length > size:
            return (
                f"encapsulated Pixel Data fragment at byte {pos} claims {length} bytes, "
                f"only {size - pos - 8} remain"
            )
        pos += 8 + length
    return ""


class ImageSource:
    """One instance on disk: its header, geometry, and a way to decode frame N."""

    def __init__(self, path: Path, ds: Dataset | None = None) -> None:
        self.path = Path(path)
        self.ds = ds if ds is not None else read_header(self.path)
        self.transfer_syntax = transfer_syntax_of(self.ds)
        self._geometry: ImageGeometry | None = None
        self._problem: CannotDisplayError | None = None
        self._check()

    @property
    def sop_uid(self) -> str:
        return str(self.ds.get("SOPInstanceUID", ""))

    @property
    def has_pixels(self) -> bool:
        return PIXEL_DATA in self.ds or any(t in self.ds for t in FLOAT_PIXEL_DATA)

    @property
    def displayable(self) -> bool:
        return self._problem is None

    @property
    def problem(self) -> str:
        """Why the instance cannot be displayed ('' when it can)."""
        return self._problem.message if self._problem else ""

    @property
    def geometry(self) -> ImageGeometry:
        if self._problem is not None:
            raise self._problem
        assert self._geometry is not None
        return self._geometry

    @property
    def frames(self) -> int:
        return self._geometry.frames if self._geometry else 0

    def _check(self) -> None:
        """Decide once whether this instance can be displayed, and why not."""
        try:
            if not self.has_pixels:
                raise CannotDisplayError("no pixel data (not an image)")
            if self.transfer_syntax in conformance.VIDEO:
                raise CannotDisplayError(
                    "video: play externally",
                    hint=f"{self.transfer_syntax.name} is not decoded in the viewer",
                )
            self._geometry = geometry_of(self.ds)
            self._check_length(self._geometry)
        except CannotDisplayError as exc:
            self._problem = exc

    def _check_length(self, geo: ImageGeometry) -> None:
        """Native Pixel Data shorter than one frame is refused before decoding."""
        elem = peek(self.ds, PIXEL_DATA)
        if elem is None:
            return
        length = getattr(elem, "length", None)
        if length is None:
            value = getattr(elem, "value", None)
            length = len(value) if value is not None else None
        if length == UNDEFINED_LENGTH:
            value = getattr(elem, "value", None)
            problem = check_fragments(value) if isinstance(value, (bytes, bytearray)) else ""
            if problem:
                raise CannotDisplayError(f"cannot display: {problem}")
            return
        if length is None:
            return
        if self.transfer_syntax.is_compressed and not self.transfer_syntax.is_deflated:
            return
        if length < geo.frame_bytes:
            raise CannotDisplayError(
                f"cannot display: Pixel Data has {length} bytes, one frame needs {geo.frame_bytes}"
            )

    def frame_available(self, index: int) -> bool:
        """False when native Pixel Data is too short to hold frame `index`."""
        geo = self.geometry
        elem = peek(self.ds, PIXEL_DATA)
        length = getattr(elem, "length", None) if elem is not None else None
        if (
            length is None
            or length == UNDEFINED_LENGTH
            or (self.transfer_syntax.is_compressed and not self.transfer_syntax.is_deflated)
        ):
            return True
        return length >= geo.frame_bytes * (index + 1)

    def decode(self, index: int = 0) -> np.ndarray:
        """Stored values of frame `index` (0-based): (rows, cols) or (rows, cols, 3) RGB.

        YBR colour is converted to RGB and planar data interleaved by pydicom;
        palette images keep their indices (the LUT is applied when rendering).
        """
        geo = self.geometry
        if not 0 <= index < geo.frames:
            raise DecodeError(f"frame {index + 1} does not exist (the instance has {geo.frames})")
        if not self.frame_available(index):
            raise DecodeError(f"frame {index + 1}: Pixel Data ends before this frame")
        try:
            arr = self._pixel_array(index if geo.frames > 1 else None)
        except (NotImplementedError, RuntimeError) as exc:
            raise self._decoder_error(index, exc) from exc
        except (ValueError, OSError, EOFError, TypeError, AttributeError, KeyError) as exc:
            raise DecodeError(f"frame {index + 1}: {exc}") from exc
        except MemoryError as exc:
            raise DecodeError(f"frame {index + 1}: not enough memory to decode") from exc
        if arr.ndim == 3 and geo.samples == 1:
            arr = arr[0]
        return arr

    def _pixel_array(self, index: int | None) -> np.ndarray:
        """Decode from the file (seeking to the one frame); deflated bodies need a full read."""
        if self.transfer_syntax.is_deflated:
            try:
                read_instance_info(self.path)  # refuses deflate bombs before inflating
            except GearviewError as exc:
                raise DecodeError(f"frame {(index or 0) + 1}: {exc.message}") from exc
            full = pydicom.dcmread(os.fspath(self.path), force=True)
            return pixel_array(full, index=index)
        meta = getattr(self.ds, "file_meta", None)
        if meta is None or "TransferSyntaxUID" not in meta:
            full = pydicom.dcmread(os.fspath(self.path), force=True)
            full.file_meta = meta or pydicom.dataset.FileMetaDataset()
            full.file_meta.TransferSyntaxUID = self.transfer_syntax
            return pixel_array(full, index=index)
        return pixel_array(os.fspath(self.path), index=index)

    def _decoder_error(self, index: int, exc: Exception) -> DecodeError:
        """Name the missing plugin when pydicom has no usable decoder, else the plugins' words."""
        plugin = PLUGIN_FOR.get(self.transfer_syntax)
        if plugin and not decoder_available(self.transfer_syntax):
            return DecodeError(
                f"frame {index + 1}: no decoder for {self.transfer_syntax.name}",
                hint=f"install {plugin}",
            )
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        text = "; ".join(lines[1:] or lines) or type(exc).__name__
        return DecodeError(f"frame {index + 1}: cannot decode {self.transfer_syntax.name}: {text}")
