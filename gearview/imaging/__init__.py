"""Pixel pipeline: decode, modality/VOI LUTs, render to 8-bit frames (no Qt)."""
