"""Studies for the de-identification tests: markers planted in every Table E.1-1 attribute,
and a study of CT + SR + KOS + GSPS whose references must survive the copy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from engine.imaging_samples import make_gsps
from factory import make_ct
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import (
    ComprehensiveSRStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    GrayscaleSoftcopyPresentationStateStorage,
    KeyObjectSelectionDocumentStorage,
    UltrasoundImageStorage,
    generate_uid,
)

from gearview import IMPLEMENTATION_CLASS_UID
from gearview.deid.profile import listed_tags
from gearview.store import Cache

MARK = b"MRK"
#: Attributes the fixture sets itself (structure), or that live only in file meta / DICOMDIR.
NOT_PLANTED = {
    Tag("SOPInstanceUID"),
    Tag("StudyInstanceUID"),
    Tag("SeriesInstanceUID"),
    Tag("FrameOfReferenceUID"),
    Tag("PatientName"),
    Tag("PatientID"),
}
REFERENCES = {Tag("ReferencedImageSequence"), Tag("SourceImageSequence")}


@dataclass
class Planted:
    """What was planted: text markers (byte-scanned), temporal and numeric values, UIDs."""

    count: int = 0
    temporal: set[str] = field(default_factory=set)
    numbers: dict[int, object] = field(default_factory=dict)
    uids: set[str] = field(default_factory=set)
    tags: set[int] = field(default_factory=set)

    def marker(self) -> str:
        self.count += 1
        return f"MRK{self.count:05d}"

    def date(self) -> str:
        self.count += 1
        value = (dt.date(1850, 1, 1) + dt.timedelta(days=self.count)).strftime("%Y%m%d")
        self.temporal.add(value)
        return value

    def time(self) -> str:
        self.count += 1
        n = self.count
        value = f"{n % 24:02d}{n % 60:02d}{(n * 7) % 60:02d}.{n:06d}"
        self.temporal.add(value)
        return value

    def uid(self) -> str:
        value = generate_uid()
        self.uids.add(value)
        return value


def _vr(tag: int) -> str:
    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return "LO"  # newer than pydicom's dictionary: any VR will do for a removal


def _value(vr: str, planted: Planted, tag: int) -> object:
    if vr in ("AE", "CS", "LO", "SH", "ST", "LT", "UT", "UC", "UR"):
        return planted.marker()
    if vr == "PN":
        return f"{planted.marker()}^{planted.marker()}"
    if vr == "DA":
        return planted.date()
    if vr == "TM":
        return planted.time()
    if vr == "DT":
        return planted.date() + "101010"
    if vr == "UI":
        return planted.uid()
    if vr == "AS":
        planted.numbers[tag] = "099Y"
        return "099Y"
    if vr in ("DS", "IS"):
        planted.numbers[tag] = "4242"
        return "4242"
    if vr in ("US", "SS", "UL", "SL", "UV", "SV", "FL", "FD"):
        planted.numbers[tag] = 4242
        return 4242
    if vr == "AT":
        return 0x00104242
    return planted.marker().encode() + b"BIN0"  # OB, OW, UN...: 12 bytes


def _private(ds: Dataset, planted: Planted) -> None:
    block = ds.private_block(0x0009, "ACME MARKERS", create=True)
    block.add_new(0x10, "LO", planted.marker())
    block.add_new(0x11, "UN", planted.marker().encode())


def _content_item(planted: Planted, depth: int) -> Dataset:
    """A content tree node with every identifying value a document may carry."""
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    item.TextValue = planted.marker()
    item.PersonName = f"{planted.marker()}^X"
    item.DateTime = planted.date() + "121212"
    item.UID = planted.uid()
    item.ObservationDateTime = planted.date() + "111111"
    _private(item, planted)
    if depth:
        item.ContentSequence = Sequence([_content_item(planted, depth - 1)])
    return item


def _item(tag: int, planted: Planted) -> Dataset:
    """One item for a listed sequence, with markers where the profile must remove them."""
    item = Dataset()
    _private(item, planted)
    if tag == Tag("ContentSequence"):
        return _content_item(planted, 2)
    if tag == Tag("GraphicAnnotationSequence"):
        text = Dataset()
        text.UnformattedTextValue = planted.marker()
        item.GraphicLayer = "L1"
        item.TextObjectSequence = Sequence([text])
        return item
    if tag == Tag("VerifyingObserverSequence"):
        item.VerifyingObserverName = f"{planted.marker()}^V"
        item.VerifyingOrganization = planted.marker()
        item.VerificationDateTime = planted.date() + "090909"
        return item
    if tag in REFERENCES:
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = planted.uid()
        return item
    item.CodeValue = planted.marker()
    item.CodingSchemeDesignator = "99MRK"
    item.CodeMeaning = planted.marker()
    nested = Dataset()
    nested.PersonName = f"{planted.marker()}^N"
    nested.LongCodeValue = planted.marker()
    item.PurposeOfReferenceCodeSequence = Sequence([nested])
    return item


def plant_markers(ds: Dataset, planted: Planted) -> None:
    """A marker in every individually listed attribute of Table E.1-1, nested ones too."""
    for tag in listed_tags():
        if Tag(tag).group in (0x0000, 0x0002, 0x0004) or Tag(tag) in NOT_PLANTED:
            continue
        vr = _vr(tag)
        planted.tags.add(tag)
        if vr == "SQ":
            ds.add_new(tag, "SQ", Sequence([_item(tag, planted)]))
        else:
            ds.add_new(tag, vr, _value(vr, planted, tag))
    _private(ds, planted)
    # table attributes inside sequences the table does not list, three levels down
    inner = Dataset()
    inner.InstitutionName = planted.marker()
    inner.PatientName = f"{planted.marker()}^DEEP"
    inner.StudyDate = planted.date()
    _private(inner, planted)
    middle = Dataset()
    middle.CodeValue, middle.CodingSchemeDesignator, middle.CodeMeaning = "1", "99X", "derived"
    middle.OperatorsName = f"{planted.marker()}^OP"
    middle.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds.DerivationCodeSequence = Sequence([middle])
    ds.add_new(0x60000010, "US", 64)  # an overlay: its data and comments are in the table
    ds.add_new(0x60000011, "US", 64)
    ds.add_new(0x60003000, "OW", planted.marker().encode() + b"OVERLAY0")
    ds.add_new(0x60004000, "LT", planted.marker())


def walk(ds: Dataset) -> Iterator[pydicom.DataElement]:
    """Every element at any depth."""
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from walk(item)


def uids_in(ds: Dataset) -> set[str]:
    found = set()
    for elem in walk(ds):
        if elem.VR == "UI" and elem.value:
            values = (
                elem.value
                if isinstance(elem.value, list | pydicom.multival.MultiValue)
                else [elem.value]
            )
            found.update(str(v) for v in values)
    return found


def _meta(ds: Dataset, sop_class: str) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    ds.SOPClassUID = sop_class


def _patient_study(
    ds: Dataset, study_uid: str, series_uid: str, modality: str, number: int
) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName, ds.PatientID = "Marker^Patient", "MRKPID01"
    ds.PatientBirthDate, ds.PatientSex = "19600202", "F"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.StudyTime = "20230405", "101112"
    ds.AccessionNumber, ds.StudyID = "MRKACC01", "1"
    ds.ReferringPhysicianName = "Referring^Doctor"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = modality, number, 1
    ds.Manufacturer = "gearview tests"
    ds.SeriesDate, ds.SeriesTime = "20230405", "101112"
    ds.ContentDate, ds.ContentTime = "20230405", "101500"


def _code(value: str, meaning: str, scheme: str = "DCM") -> Sequence:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return Sequence([item])


def _evidence(study_uid: str, series_uid: str, images: list[str]) -> Sequence:
    refs = []
    for uid in images:
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CTImageStorage, uid
        refs.append(ref)
    series = Dataset()
    series.SeriesInstanceUID = series_uid
    series.ReferencedSOPSequence = Sequence(refs)
    study = Dataset()
    study.StudyInstanceUID = study_uid
    study.ReferencedSeriesSequence = Sequence([series])
    return Sequence([study])


def _image_item(uid: str) -> Dataset:
    item = Dataset()
    item.RelationshipType, item.ValueType = "CONTAINS", "IMAGE"
    item.ConceptNameCodeSequence = _code("121233", "Source image for segmentation")
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = CTImageStorage, uid
    item.ReferencedSOPSequence = Sequence([ref])
    return item


def _document(
    sop_class: str, study_uid: str, modality: str, number: int, title: Sequence
) -> Dataset:
    """The header and root container of an SR document or a KOS."""
    ds = Dataset()
    ds.SOPInstanceUID = generate_uid()
    _meta(ds, sop_class)
    _patient_study(ds, study_uid, generate_uid(), modality, number)
    ds.ReferencedPerformedProcedureStepSequence = Sequence([])
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = title
    ds.ContinuityOfContent = "SEPARATE"
    return ds


def make_kos(study_uid: str, ct_series: str, images: list[str]) -> Dataset:
    title = _code("113000", "Of Interest")
    ds = _document(KeyObjectSelectionDocumentStorage, study_uid, "KO", 90, title)
    template = Dataset()
    template.MappingResource, template.TemplateIdentifier = "DCMR", "2010"
    ds.ContentTemplateSequence = Sequence([template])
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(study_uid, ct_series, images)
    ds.ContentSequence = Sequence([_image_item(uid) for uid in images])
    return ds


def make_sr(study_uid: str, ct_series: str, images: list[str]) -> Dataset:
    title = _code("18748-4", "Diagnostic Imaging Report", "LN")
    ds = _document(ComprehensiveSRStorage, study_uid, "SR", 91, title)
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.PerformedProcedureCodeSequence = Sequence([])
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(study_uid, ct_series, images)
    text = Dataset()
    text.RelationshipType, text.ValueType = "CONTAINS", "TEXT"
    text.ConceptNameCodeSequence = _code("121071", "Finding")
    text.TextValue = "Finding reported by MRKSRTEXT for Marker^Patient"
    ds.ContentSequence = Sequence([text, _image_item(images[0])])
    return ds


def make_pr(study_uid: str, ct_series: str, image: str) -> Dataset:
    ds = make_gsps(image, ct_series)
    ds.SOPInstanceUID = generate_uid()
    _meta(ds, GrayscaleSoftcopyPresentationStateStorage)
    _patient_study(ds, study_uid, generate_uid(), "PR", 92)
    ds.ContentDescription = "review"
    ds.ContentCreatorName = "Creator^MRKGSPS"
    ds.PresentationCreationDate, ds.PresentationCreationTime = "20230406", "090000"
    ds.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue = "MRKGSPSTEXT"
    layer = Dataset()
    layer.GraphicLayer, layer.GraphicLayerOrder = "L1", 1
    ds.GraphicLayerSequence = Sequence([layer])
    ds.PresentationLUTShape = "IDENTITY"
    return ds


def make_us(study_uid: str, burned_in: str | None = None) -> Dataset:
    """An ultrasound frame, Burned In Annotation absent unless given."""
    ds = make_ct(study_uid, generate_uid(), 1, modality="US")
    _meta(ds, UltrasoundImageStorage)
    ds.PhotometricInterpretation = "MONOCHROME2"
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    return ds


def _save(cache: Cache, ds: Dataset, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    cache.add_file(path)
    return path


def add_referencing_study(
    cache: Cache, folder: Path, planted: Planted | None = None, slices: int = 3
) -> str:
    """CT slices (markers planted when `planted` is given) + an SR, a KOS and a GSPS on them."""
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    images = []
    for i in range(1, slices + 1):
        ds = make_ct(study_uid, series_uid, i, patient_name="Marker^Patient", patient_id="MRKPID01")
        ds.BurnedInAnnotation = "NO"
        ds.FrameOfReferenceUID = frame_uid
        if planted is not None:
            plant_markers(ds, planted)
        images.append(str(ds.SOPInstanceUID))
        _save(cache, ds, folder, f"ct{i}.dcm")
    _save(cache, make_sr(study_uid, series_uid, images), folder, "sr.dcm")
    _save(cache, make_kos(study_uid, series_uid, images), folder, "kos.dcm")
    _save(cache, make_pr(study_uid, series_uid, images[0]), folder, "pr.dcm")
    return study_uid


def add_us_study(cache: Cache, folder: Path, burned_in: str | None = None) -> str:
    study_uid = generate_uid()
    _save(cache, make_us(study_uid, burned_in), folder, "us.dcm")
    return study_uid


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def dicom_files(folder: Path) -> list[Path]:
    return [
        p
        for p in files_under(folder)
        if p.name != "DICOMDIR" and p.read_bytes()[128:132] == b"DICM"
    ]


def keyword(tag: int) -> str:
    return keyword_for_tag(tag) or f"{tag:08X}"
