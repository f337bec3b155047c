"""The record every cache mutation returns, so views refresh only what changed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Changes:
    """UIDs touched by one mutation, by level and kind."""

    studies_added: set[str] = field(default_factory=set)
    studies_updated: set[str] = field(default_factory=set)
    studies_removed: set[str] = field(default_factory=set)
    series_added: set[str] = field(default_factory=set)
    series_updated: set[str] = field(default_factory=set)
    series_removed: set[str] = field(default_factory=set)
    instances_added: set[str] = field(default_factory=set)
    instances_updated: set[str] = field(default_factory=set)
    instances_removed: set[str] = field(default_factory=set)
    undo_id: str | None = None

    def merge(self, other: Changes) -> Changes:
        for name in self.__dataclass_fields__:
            if name == "undo_id":
                self.undo_id = other.undo_id or self.undo_id
            else:
                getattr(self, name).update(getattr(other, name))
        return self

    @property
    def studies(self) -> set[str]:
        """Every study this change touched in any way."""
        return self.studies_added | self.studies_updated | self.studies_removed

    def __bool__(self) -> bool:
        return any(getattr(self, n) for n in self.__dataclass_fields__ if n != "undo_id")
