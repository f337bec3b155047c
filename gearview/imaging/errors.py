"""Errors of the pixel pipeline: each names the frame and, for decoders, the missing plugin."""

from __future__ import annotations

from gearview.errors import GearviewError


class ImageError(GearviewError, ValueError):
    """An instance or frame cannot be shown; the message says why."""


class CannotDisplayError(ImageError):
    """The instance has no displayable pixels (absurd size, no Pixel Data, video, non-image)."""


class DecodeError(ImageError):
    """A frame's compressed or native data could not be decoded."""
