"""gearview: a DICOM QC workstation (engine package; the GUI lives in gearview.ui)."""

__version__ = "0.1.0"

#: gearview's own Implementation Class UID: a 2.25 (UUID-derived) root fixed
#: once so that peers and logs can tell our files and associations apart.
IMPLEMENTATION_CLASS_UID = "2.25.150190009218622810410254159849013150890"
#: At most 16 characters (PS3.7 D.3.3.2.3).
IMPLEMENTATION_VERSION_NAME = f"GEARVIEW_{__version__}"[:16]
