"""Pixel pipeline: decode, modality/VOI LUTs, render to 8-bit frames (no Qt)."""

from gearview.imaging.cache import FrameCache
from gearview.imaging.decode import ImageSource
from gearview.imaging.errors import CannotDisplayError, DecodeError, ImageError
from gearview.imaging.luts import Window
from gearview.imaging.render import RenderedFrame, RenderOptions, render_frame

__all__ = [
    "CannotDisplayError",
    "DecodeError",
    "FrameCache",
    "ImageError",
    "ImageSource",
    "RenderOptions",
    "RenderedFrame",
    "Window",
    "render_frame",
]
