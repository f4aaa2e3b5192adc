"""Composite (multi-hop) relations: facts derived by following a schema rule such as
``birth_country = born_in ∘ located_in``. Derived facts carry their provenance."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from oneedit.core import Triple
from controller.schema import RelationSpec, Schema

#: ``objects(subject, relation) -> object ids``: how rules read the base facts.
ObjectsFn = Callable[[str, str], Iterable[str]]


@dataclass(frozen=True, slots=True)
class DerivedFact:
    triple: Triple
    rule: str
    via: tuple[Triple, ...]  # the base facts, in rule order


def derive_from(subject: str, spec: RelationSpec, objects: ObjectsFn) -> list[DerivedFact]:
    """Every fact of composite ``spec`` for ``subject``, with the path that supports it."""
    paths: list[tuple[str, tuple[Triple, ...]]] = [(subject, ())]
    for step in spec.rule:
        paths = [(o, via + (Triple(node, step, o),)) for node, via in paths for o in objects(node, step)]
        if not paths:
            return []
    out: dict[Triple, DerivedFact] = {}
    for end, via in paths:
        if end == subject:
            continue
        t = Triple(subject, spec.id, end)
        out.setdefault(t, DerivedFact(t, spec.id, via))
    return list(out.values())


def derive_all(schema: Schema, subjects_of: Callable[[str], Iterable[str]],
               objects: ObjectsFn) -> list[DerivedFact]:
    """All composite facts. ``subjects_of(relation)`` lists subjects having that relation."""
    out: list[DerivedFact] = []
    for spec in schema.composite_relations():
        for s in sorted(set(subjects_of(spec.rule[0]))):
            out.extend(derive_from(s, spec, objects))
    return out
