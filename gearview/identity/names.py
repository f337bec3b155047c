"""Comparing patient names across hospitals: order, case and diacritics may differ.

An outside disc says "MULLER^JURGEN", the local record "Müller^Jürgen"; one
system puts the given name first, another writes both in one component. The
comparison folds each name to plain lower-case words (anyascii transliterates
accents and other scripts) and says *why* two names match, so a clerk can
judge the candidate.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from anyascii import anyascii

#: Two folded names at least this alike (difflib ratio) count as a spelling variant.
SIMILAR_RATIO = 0.85
_NON_WORD = re.compile(r"[^0-9a-z]+")

SAME = 1.0
FOLDED = 0.95
REORDERED = 0.9
ABBREVIATED = 0.75
SIMILAR = 0.6


@dataclass(frozen=True)
class FoldedName:
    """A Person Name reduced to comparable words."""

    family: tuple[str, ...]
    given: tuple[str, ...]

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(sorted(self.family + self.given))

    @property
    def empty(self) -> bool:
        return not self.family and not self.given


@dataclass(frozen=True)
class NameMatch:
    score: float
    reason: str


def _words(text: str) -> tuple[str, ...]:
    return tuple(w for w in _NON_WORD.split(anyascii(text).casefold()) if w)


def fold_name(pn: str) -> FoldedName:
    """The first non-empty component group (alphabetic, else ideographic), folded.

    A name written in one component ("DOE JOHN") keeps all its words as the
    family part; the order-free comparison still matches it.
    """
    groups = [g for g in str(pn).split("=") if g.strip("^ ")]
    components = (groups[0] if groups else "").split("^")
    family = _words(components[0])
    given = tuple(w for part in components[1:3] for w in _words(part))
    return FoldedName(family, given)


def _abbreviated(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """One given name missing, or given as initials of the other."""
    if not a or not b:
        return True
    short, long = (a, b) if len(" ".join(a)) <= len(" ".join(b)) else (b, a)
    return len(short) <= len(long) and all(
        s == w or (len(s) == 1 and w.startswith(s)) for s, w in zip(short, long, strict=False)
    )


def compare_names(outside: str, local: str) -> NameMatch | None:
    """How well two Person Names match, with the reason; None when they do not."""
    if outside.strip("^ ") == local.strip("^ ") and outside.strip("^ "):
        return NameMatch(SAME, "same name")
    a, b = fold_name(outside), fold_name(local)
    if a.empty or b.empty:
        return None
    if a == b:
        return NameMatch(FOLDED, "same name apart from case, accents or punctuation")
    if a.words == b.words:
        return NameMatch(REORDERED, "same name with family and given names in another order")
    if a.family == b.family and _abbreviated(a.given, b.given):
        return NameMatch(ABBREVIATED, "same family name, given name abbreviated or missing")
    ratio = difflib.SequenceMatcher(None, " ".join(a.words), " ".join(b.words)).ratio()
    if ratio >= SIMILAR_RATIO:
        return NameMatch(SIMILAR * ratio, f"similar spelling ({ratio:.0%} alike)")
    return None
