"""Synthetic non-image objects for the imaging and viewer tests."""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage


def make_gsps(image_uid: str, series_uid: str) -> Dataset:
    """A GSPS with a window, a polyline, a circle and a text on one image."""
    ds = Dataset()
    ds.ContentLabel = "REVIEW"
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CTImageStorage, image_uid
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.ReferencedImageSequence = Sequence([ref])
    ds.ReferencedSeriesSequence = Sequence([series])
    voi = Dataset()
    voi.WindowCenter, voi.WindowWidth = 100, 50
    ds.SoftcopyVOILUTSequence = Sequence([voi])
    line = Dataset()
    line.GraphicAnnotationUnits, line.GraphicType = "PIXEL", "POLYLINE"
    line.GraphicDimensions, line.NumberOfGraphicPoints = 2, 2
    line.GraphicData = [1.0, 1.0, 11.0, 21.0]
    circle = Dataset()
    circle.GraphicAnnotationUnits, circle.GraphicType = "DISPLAY", "CIRCLE"
    circle.GraphicData = [0.5, 0.5, 0.75, 0.5]
    text = Dataset()
    text.UnformattedTextValue = "lesion"
    text.AnchorPointAnnotationUnits = "PIXEL"
    text.AnchorPoint = [5.0, 6.0]
    layer = Dataset()
    layer.GraphicLayer = "L1"
    layer.GraphicObjectSequence = Sequence([line, circle])
    layer.TextObjectSequence = Sequence([text])
    ds.GraphicAnnotationSequence = Sequence([layer])
    return ds
