"""DICOM networking: the embedded SCP, the SCU clients and the node table."""
