"""De-identified copies for export, burn and send (PS3.15 Annex E, SPEC §2.11).

`profile` resolves Table E.1-1 to one action per element, `keys` holds the
station's secret and the keyed UID / pseudonym mapping, `deidentify` applies
the Basic Application Level Confidentiality Profile to a data set,
`burned_in` finds instances whose pixels or documents may show identifying
text, `writer` writes de-identified copies of cache files (pixel data copied
byte for byte) and `preview` shows what changes. The cache is never changed:
media/export.py and net/tasks.py write and send the copies.
"""

from gearview.deid.burned_in import BurnedInRefused, Refusal, find_burned_in
from gearview.deid.deidentify import Deidentifier, DeidOptions
from gearview.deid.writer import CopiedInstance, deidentify_files

__all__ = [
    "BurnedInRefused",
    "CopiedInstance",
    "DeidOptions",
    "Deidentifier",
    "Refusal",
    "deidentify_files",
    "find_burned_in",
]
