"""The QC promise (SPEC §2.10): pre-send safety checks and where each study stands.

Qt-free and built on the store alone, so the job runners (`net/tasks.py`),
the CLI and the GUI share one implementation.
"""
