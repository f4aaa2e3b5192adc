"""Counterfactual edit cases drawn from the KG (seeded), for ``oneedit eval``.

A case changes one functional fact the model knows to a plausible wrong value — another object
the same relation has elsewhere in the KG (France's capital becomes Berlin) — and carries:

* the edit prompts (the relation's training templates) — **reliability**;
* held-out rephrasings (the relation's held-out templates, never used to edit) — **generality**;
* locality probes: the same relation for other subjects, the same subject's other relations, and
  random facts; the model should answer them as before — **locality**;
* portability probes: what must follow from the edit by the schema — the inverse fact (Berlin is
  the capital of France) and composite facts through it (a new birthplace moves the birth country
  and continent) — **portability**, probed on a held-out phrasing where there is one;
* ``augment``: the requests the controller's rule augmentation adds to the edit for those
  consequences (``oneedit eval --augment`` edits them together with the case).
"""

from __future__ import annotations

import random
from collections import defaultdict

from oneedit.core import OneEditError, Triple


def _pick(rng: random.Random, items, k):
    items = list(items)
    return rng.sample(items, min(k, len(items)))


def make_cases(ws, n: int, *, seed: int = 0, relations=None, locality_per_kind: int = 2):
    """``n`` cases over the model's base relations, no two on the same (subject, relation)."""
    from editor.evaluate import Case
    from editor.memit import Request
    from oneedit.knowledge import Labeller, kg_triples, model_relations, verbalizer

    kg = ws.kg
    schema = kg.schema
    verb = verbalizer(schema)
    label = Labeller(kg)
    rels = [r for r in (relations or model_relations(schema)) if not schema.relations[r].composite]
    known = kg_triples(kg)  # what the model learned
    by_rel: dict[str, list[Triple]] = defaultdict(list)
    by_subject: dict[str, list[Triple]] = defaultdict(list)
    for t in known:
        by_rel[t.relation].append(t)
        by_subject[t.subject].append(t)
    candidates = [t for r in rels for t in by_rel.get(r, []) if verb.prompt_templates(r, "heldout")]
    if not candidates:
        raise OneEditError("The KG has no facts the model can be evaluated on.")
    rng = random.Random(seed)
    rng.shuffle(candidates)
    used_subjects: set[str] = set()
    used_objects: set[str] = set()
    cases = []
    for t in candidates:
        if len(cases) >= n:
            break
        if t.subject in used_subjects:
            continue
        spec = schema.relations[t.relation]
        pool = sorted({x.object for x in by_rel[t.relation]} - {t.object, t.subject} - used_objects)
        if spec.symmetric or spec.inverse:
            # the new object must not already be bound the other way (a functional inverse would clash)
            mirror = schema.mirror(t.relation)
            pool = [o for o in pool if not (schema.relations[mirror].functional and kg.store.objects(o, mirror))] \
                if mirror in schema.relations and schema.relations[mirror].functional else pool
        if not pool:
            continue
        new_obj = rng.choice(pool)
        used_subjects.add(t.subject)
        if spec.symmetric or spec.inverse:
            used_subjects.add(new_obj)
            used_objects.add(new_obj)
        edited = Triple(t.subject, t.relation, new_obj)
        fact = label.fact(edited)
        request = Request.of(verb.prompts(fact, "train"))
        generality = verb.prompts(fact, "heldout")
        locality = []
        same_rel = [x for x in by_rel[t.relation] if x.subject != t.subject and x.object != new_obj]
        same_subj = [x for x in by_subject[t.subject] if x.relation != t.relation and not _depends(schema, x.relation, t.relation)]
        others = [x for x in _pick(rng, known, 8) if x.subject != t.subject]
        for kind, pool_ in (("same_relation", same_rel), ("same_subject", same_subj), ("random", others)):
            for x in _pick(rng, pool_, locality_per_kind):
                p = verb.prompt(label.fact(x), "train", rng.randrange(8))
                locality.append((kind, p))
        portability, augment = [], []
        for x in _consequences(kg, edited):
            f = label.fact(x)
            train = verb.prompts(f, "train")
            if not train:
                continue
            # probed on a held-out phrasing where the relation has one, so that an augmented edit
            # (which writes the consequence's training prompts) is not measured on its own prompts
            held = verb.prompts(f, "heldout")
            portability.append((x.relation, (held or train)[0]))
            augment.append(Request.of(train))
        cases.append(Case(
            case_id=f"c{len(cases) + 1}", fact=fact, old_object=label(t.object), request=request,
            generality=generality, locality=locality, portability=portability, augment=augment))
    if len(cases) < n:
        raise OneEditError(f"Only {len(cases)} independent edit cases could be drawn from the KG (asked for {n}).",
                           hint="Ask for fewer edits.")
    return cases


def _depends(schema, relation: str, on: str) -> bool:
    spec = schema.relations[relation]
    return on in spec.rule


def _consequences(kg, edited: Triple) -> list[Triple]:
    """What the controller's rule augmentation writes into the model with the edit, besides the
    edit itself: the inverse or symmetric fact and the composite facts that now hold (at most 4)."""
    from controller.planner import Planner
    from oneedit.core import EditIntent, Mention

    def mention(eid: str) -> Mention:
        return Mention(kg.label(eid), entity=kg.store.entity(eid), confidence=1.0)

    plan = Planner(kg).plan([EditIntent("assert", mention(edited.subject), edited.relation,
                                        mention(edited.object))])
    return [t for t in plan.model_facts if t != edited][:4]
