"""The KG neighbourhood of a model edit: the facts an update is most likely to disturb.

A MEMIT update is a least-squares solve over key vectors; the keys it is most likely to move are
the ones that look like the edited ones — the same subject's other facts (its keys share the
subject's tokens) and other subjects' facts of the same relation (their keys share the template).
No other editing tool knows which facts those are; the KG does. They are used two ways:

* as **preserved prompts** (``keep``) in the edit's solve: each is a key column whose target is the
  model's present output there, so the update spends its freedom away from them;
* as the facts the **audit** re-reads after the edit (:meth:`oneedit.audit.AuditLog.refresh`).

The selection is seeded and bounded, so an edit's cost does not grow with the KG.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence

from oneedit.core import Triple


def neighbour_facts(kg, facts: Sequence[Triple], *, limit: int = 64, seed: int = 0) -> list[Triple]:
    """Up to ``limit`` KG facts the model should know that share a subject or a relation with
    ``facts`` (never one of ``facts``' own (subject, relation) slots): same-subject facts first,
    then an even share of same-relation facts per edited relation, drawn with ``seed``."""
    from oneedit.knowledge import model_relations

    slots = {(t.subject, t.relation) for t in facts}
    learned = set(model_relations(kg.schema))
    rng = random.Random(seed)
    same_subject: list[Triple] = []
    for s in sorted({t.subject for t in facts}):
        same_subject += [t for t in _stored_and_derived(kg, subject=s) if t.relation in learned]
    same_subject = [t for t in dict.fromkeys(same_subject) if (t.subject, t.relation) not in slots]
    if len(same_subject) >= limit:
        return sorted(rng.sample(same_subject, limit))
    out = list(same_subject)
    rels = sorted({t.relation for t in facts} & learned)
    room = limit - len(out)
    for i, r in enumerate(rels):
        share = room // len(rels) + (1 if i < room % len(rels) else 0)
        pool = [t for t in _stored_and_derived(kg, relation=r) if (t.subject, t.relation) not in slots and t not in out]
        out += rng.sample(pool, min(share, len(pool)))
    return sorted(set(out))


def _stored_and_derived(kg, *, subject: str | None = None, relation: str | None = None) -> Iterable[Triple]:
    schema = kg.schema
    rels = [relation] if relation else list(schema.relations)
    for rid in rels:
        spec = schema.relations.get(rid)
        if spec is None:
            continue
        if spec.composite:
            yield from (d.triple for d in kg.derived(rid, subject=subject))
        else:
            yield from kg.store.triples(subject, rid, None)


def keep_prompts(kg, facts: Sequence[Triple], *, limit: int = 64, seed: int = 0) -> list:
    """The neighbours' prompts an edit of ``facts`` should leave alone (one training template per
    neighbour, rotating through the relation's templates), targets from the KG."""
    from oneedit.knowledge import Labeller, verbalizer

    verb = verbalizer(kg.schema)
    label = Labeller(kg)
    out = []
    for i, t in enumerate(neighbour_facts(kg, facts, limit=limit, seed=seed)):
        f = label.fact(t)
        if verb.prompt_templates(t.relation, "train"):
            out.append(verb.prompt(f, "train", i))
    return out
