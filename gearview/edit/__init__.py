"""Demographics QC edits: study-wide changes, structure fixes, audit."""
