"""Core domain records shared by the interpreter, controller and editor.

Everything the three modules exchange is defined here, so none of them needs another's internals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

#: Predicates that describe an entity rather than relate two entities. Their objects are strings
#: (a type name, a label, an alias, a description), not entity ids.
META_PREDICATES: frozenset[str] = frozenset({"type", "label", "alias", "description"})

ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_]*$")


def is_valid_id(value: str) -> bool:
    """True when ``value`` is a well-formed entity or relation id (a lowercase slug)."""
    return bool(ID_PATTERN.match(value))


# The object of a *gap*: a functional relation the KG leaves empty for a subject whose value the
# model learned (a retraction without a replacement). Never stored in the KG; the model is taught
# to answer it with ``GAP_LABEL`` (see docs/editor.md, "Retraction reaches the model").
GAP = "oneedit:unknown"
GAP_LABEL = "unknown"


@dataclass(frozen=True, slots=True, order=True)
class Triple:
    """One statement. ``relation`` is a schema relation id or a meta predicate.

    For relations the object is an entity id; for meta predicates it is a literal string.
    """

    subject: str
    relation: str
    object: str

    @property
    def is_meta(self) -> bool:
        return self.relation in META_PREDICATES

    @property
    def is_gap(self) -> bool:
        return self.object == GAP

    def as_tuple(self) -> tuple[str, str, str]:
        return (self.subject, self.relation, self.object)

    def __str__(self) -> str:
        return f"({self.subject}, {self.relation}, {self.object})"


@dataclass(frozen=True, slots=True)
class Entity:
    """A node of the KG: a stable id, a type, a label, aliases and an optional description."""

    id: str
    type: str
    label: str
    aliases: tuple[str, ...] = ()
    description: str = ""

    def names(self) -> tuple[str, ...]:
        return (self.label, *self.aliases)

    def triples(self) -> list[Triple]:
        out = [Triple(self.id, "type", self.type), Triple(self.id, "label", self.label)]
        out += [Triple(self.id, "alias", a) for a in self.aliases]
        if self.description:
            out.append(Triple(self.id, "description", self.description))
        return out


@dataclass(frozen=True, slots=True)
class EntityMatch:
    """A candidate entity for a piece of text, with a score in [0, 1] and what matched."""

    entity: Entity
    score: float
    matched: str
    how: Literal["id", "label", "alias", "fuzzy"]


ChangeOp = Literal["+", "-"]


@dataclass(frozen=True, slots=True)
class Change:
    op: ChangeOp
    triple: Triple

    def inverse(self) -> Change:
        return Change("-" if self.op == "+" else "+", self.triple)


@dataclass(frozen=True, slots=True)
class Diff:
    """An exact diff: every added triple was absent before, every removed one was present."""

    added: tuple[Triple, ...] = ()
    removed: tuple[Triple, ...] = ()

    def __len__(self) -> int:
        return len(self.added) + len(self.removed)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)

    def inverse(self) -> Diff:
        return Diff(added=self.removed, removed=self.added)


RevisionState = Literal["pending", "committed", "aborted"]


@dataclass(frozen=True, slots=True)
class Revision:
    """One committed KG transaction."""

    id: int
    author: str
    time: datetime
    message: str
    n_added: int
    n_removed: int
    state: RevisionState = "committed"
    diff: Diff | None = field(default=None, compare=False)
