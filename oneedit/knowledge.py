"""Glue between the KG (controller) and the model side (editor): facts in words.

The editor takes plain :class:`editor.verbalize.Fact` objects and template dicts; this module makes
them from a :class:`controller.kg.KnowledgeGraph` and its schema.

Which facts the default knowledge model learns: the **functional** relations (one true object per
subject), base and composite. A prompt like "The capital of France is" has one right answer, so
recall can be measured by exact match; multi-valued relations (languages, occupations, …) stay in
the KG, where a question lists every value. ``kg_data/README.md`` gives the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

from oneedit.core import Triple


def verbalizer(schema):
    from editor.verbalize import Verbalizer

    return Verbalizer({r.id: {"train": r.templates.train, "heldout": r.templates.heldout}
                       for r in schema.relations.values()})


def model_relations(schema) -> list[str]:
    return sorted(r.id for r in schema.relations.values() if r.functional)


class Labeller:
    """Entity id -> label, cached (a KG lookup per entity otherwise)."""

    def __init__(self, kg):
        self.kg = kg
        self._labels: dict[str, str] = {}

    def __call__(self, entity_id: str) -> str:
        got = self._labels.get(entity_id)
        if got is None:
            got = self._labels[entity_id] = self.kg.label(entity_id)
        return got

    def fact(self, t: Triple):
        from editor.verbalize import Fact

        return Fact(self(t.subject), t.relation, self(t.object), t.subject, t.object)

    def facts(self, triples: Iterable[Triple]) -> list:
        return [self.fact(t) for t in triples]


def kg_triples(kg, relations: Iterable[str] | None = None) -> list[Triple]:
    """Stored and derived facts of ``relations`` (default: what the model learns), sorted."""
    rels = list(relations) if relations is not None else model_relations(kg.schema)
    out: list[Triple] = []
    for rid in rels:
        spec = kg.schema.relations[rid]
        if spec.composite:
            out.extend(d.triple for d in kg.derived(rid))
        else:
            out.extend(t for t in kg.store.triples(None, rid, None))
    return sorted(set(out))


def kg_facts(kg, relations: Iterable[str] | None = None) -> list:
    return Labeller(kg).facts(kg_triples(kg, relations))


def kg_info(kg, facts) -> dict:
    """What a model card records about the KG it learned."""
    return {"revision": kg.store.head(), "snapshot": kg.schema.snapshot,
            "facts": len(facts), "relations": model_relations(kg.schema)}
