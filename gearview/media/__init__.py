"""Patient media: import from folders/DICOMDIR/ISO/zip, export and burn IHE PDI discs."""
