"""Patient identity across systems: name comparison, local-patient lookup, remembered mappings.

No Qt here; the import dialog, the Edit study form and the CLI call these.
"""
