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


def make_cases(ws, n: int, *, seed: int = 0, relations=None, locality_per_kind: int = 2, accept=None):
    """``n`` cases over the model's base relations, no two on the same (subject, relation).

    ``accept(triple)``: only facts it approves are edited (the CounterFact writer asks for facts
    whose old object answers other prompts too)."""
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
        if t.subject in used_subjects or (accept is not None and not accept(t)):
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


# -- standard dataset files (CounterFact, zsRE) drawn from the KG -------------------------------------
def dataset_records(ws, fmt: str, n: int, *, seed: int = 0, neighbours: int = 10) -> list:
    """``n`` records in CounterFact or zsRE form, drawn as :func:`make_cases` draws edit cases: the
    counterfactual new object, the relation's first training template as the edit prompt, its
    held-out templates as paraphrases / rephrasing, and KG neighbours as the probes that must not move.

    * CounterFact's neighbourhood prompts must be answered by the old object (``target_true``): other
      subjects' facts with that object, the same relation first, up to ``neighbours`` (CounterFact
      has 10), none edited by another record — so only facts whose old object answers some other
      (non-composite) fact are drawn;
      ``attribute_prompts`` are facts of the relation answered by the new object.
    * zsRE's ``loc`` is one of the case's locality probes (a random KG fact, as zsRE's are random NQ
      questions) and ``loc_ans`` the KG's answer.
    """
    from collections import defaultdict

    from editor.datasets import CounterFactRecord, ZsreRecord, check_format
    from oneedit.knowledge import Labeller, kg_triples, verbalizer

    check_format(fmt)
    if fmt == "zsre":
        out = []
        for i, c in enumerate(make_cases(ws, n, seed=seed)):
            loc = next((p for kind, p in c.locality if kind == "random"), c.locality[0][1] if c.locality else None)
            if loc is None:
                raise OneEditError(f"The edit of {c.fact.subject!r} has no unrelated fact to probe locality with.",
                                   hint="The KG is too small for a zsRE file; add facts or ask for fewer edits.")
            out.append(ZsreRecord(case_id=i, subject=c.fact.subject, src=c.request.prompts[0].text,
                                  rephrase=c.generality[0].text, alt=c.fact.object, answers=(c.old_object,),
                                  loc=loc.text, loc_ans=loc.target.strip()))
        return out
    kg, schema = ws.kg, ws.kg.schema
    verb, label = verbalizer(schema), Labeller(kg)
    known = [t for t in kg_triples(kg) if not schema.relations[t.relation].composite
             and verb.prompt_templates(t.relation, "train")]
    # composite facts are left out: one through the edited subject would move with the edit
    by_object: dict[str, list[Triple]] = defaultdict(list)
    old: dict[tuple[str, str], Triple] = {}
    for t in known:
        by_object[t.object].append(t)
        old[(t.subject, t.relation)] = t

    # a neighbour must not be edited by another record of the file (its answer moves with that
    # edit): each accepted fact reserves one neighbour that no later record may edit
    edited: set[tuple[str, str]] = set()
    reserved: set[tuple[str, str]] = set()

    def moves(x: Triple) -> bool:
        """Whether an edit of the file changes ``x``: its slot, or the mirror slot of an inverse
        or symmetric relation (an edited capital moves the old capital's ``capital_of``)."""
        mirror = schema.mirror(x.relation)
        return (x.subject, x.relation) in edited or (mirror is not None and (x.object, mirror) in edited)

    def answered_by(obj: str, t: Triple) -> list[Triple]:
        found = [x for x in by_object[obj] if x.subject != t.subject and not moves(x)]
        return sorted(found, key=lambda x: x.relation != t.relation)  # the same relation first

    def accept(t: Triple) -> bool:
        free = answered_by(t.object, t)
        if not free or {(t.subject, t.relation), (t.object, schema.mirror(t.relation))} & reserved:
            return False
        edited.add((t.subject, t.relation))
        reserved.add((free[0].subject, free[0].relation))
        return True

    rng = random.Random(f"counterfact-{seed}")
    cases = make_cases(ws, n, seed=seed, accept=accept)
    edited = {(c.fact.subject_id, c.fact.relation) for c in cases}
    out = []
    for i, c in enumerate(cases):
        t = old[(c.fact.subject_id, c.fact.relation)]
        pool = answered_by(t.object, t)
        same = [x for x in pool if x.relation == t.relation]
        other = [x for x in pool if x.relation != t.relation]
        rng.shuffle(same)
        rng.shuffle(other)
        near = [verb.prompt(label.fact(x), "train", rng.randrange(8)).text for x in (same + other)[:neighbours]]
        attr = [x for x in answered_by(c.fact.object_id, t) if x.relation == t.relation]
        attr = [verb.prompt(label.fact(x), "train", rng.randrange(8)).text for x in _pick(rng, attr, neighbours)]
        edit = c.request.prompts[0]
        head = edit.template[: edit.template.rindex("{object}")].rstrip()
        paraphrases = [p.text for p in c.generality]
        out.append(CounterFactRecord(
            case_id=i, subject=c.fact.subject, prompt=head.replace("{subject}", "{}"),
            target_new=c.fact.object, target_true=c.old_object, relation_id=t.relation,
            paraphrase_prompts=tuple(paraphrases), neighborhood_prompts=tuple(near),
            attribute_prompts=tuple(attr), generation_prompts=(edit.text, *paraphrases),
            target_new_id=c.fact.object_id, target_true_id=t.object))
    return out
