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

from oneedit.core import GAP, GAP_LABEL, Triple


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
        if entity_id == GAP:
            return GAP_LABEL
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


def slot_values(kg, subject: str, relation: str) -> list[Triple]:
    """The KG's facts for one (subject, relation) slot, stored or derived."""
    spec = kg.schema.relations.get(relation)
    if spec is not None and spec.composite:
        return [d.triple for d in kg.derived(relation, subject=subject)]
    return list(kg.store.triples(subject, relation, None))


def holds(kg, t: Triple) -> bool:
    """Whether the KG says ``t`` now; a gap holds while its slot is empty."""
    values = slot_values(kg, t.subject, t.relation)
    return not values if t.is_gap else t in values


def slot_facts(kg, subject: str, relation: str) -> list[Triple]:
    """What the model should say for a slot: the KG's value(s), or the gap when it has none."""
    return slot_values(kg, subject, relation) or [Triple(subject, relation, GAP)]


def kg_facts(kg, relations: Iterable[str] | None = None) -> list:
    return Labeller(kg).facts(kg_triples(kg, relations))


GAP_SHARE = 0.05  # gaps taught per relation, as a share of the relation's facts (at least MIN_GAPS)
MIN_GAPS = 2


def training_gaps(kg, *, share: float = GAP_SHARE, seed: int = 0) -> list:
    """Gaps the default model learns to answer "unknown" (:data:`oneedit.core.GAP_LABEL`), so that a
    retraction is an edit towards an answer it already knows how to give: for each relation it
    learns, a seeded sample of the subjects of its domain that the KG leaves without a value —
    ``share`` of the relation's facts, at least ``MIN_GAPS`` where there are that many."""
    import random

    label = Labeller(kg)
    out = []
    for rid in model_relations(kg.schema):
        spec = kg.schema.relations[rid]
        subjects = sorted({e.id for t in spec.domain for e in kg.store.entities(t)})
        empty = [s for s in subjects if not slot_values(kg, s, rid)]
        n = min(len(empty), max(MIN_GAPS, round(share * (len(subjects) - len(empty)))))
        rng = random.Random(f"{seed}:{rid}")
        out += [label.fact(Triple(s, rid, GAP)) for s in sorted(rng.sample(empty, n))]
    return out


def gap_facts(kg, learned) -> list:
    """The gaps a knowledge model should now answer "unknown": the slots of ``learned`` (facts a
    model was trained on) that the KG leaves empty, while their subject still exists."""
    label = Labeller(kg)
    out = []
    for slot in dict.fromkeys((f.subject_id, f.relation) for f in learned):
        if slot[1] in kg.schema.relations and kg.store.entity(slot[0]) is not None \
                and not slot_values(kg, *slot):
            out.append(label.fact(Triple(slot[0], slot[1], GAP)))
    return out


def kg_info(kg, facts) -> dict:
    """What a model card records about the KG it learned."""
    return {"revision": kg.store.head(), "snapshot": kg.schema.snapshot,
            "facts": len(facts), "relations": model_relations(kg.schema)}
