"""Self-repair: after each model batch, find the facts it knocked over and write them back.

A MEMIT batch is a least-squares compromise; the facts that pay for it are the ones whose keys
look like the edited ones. The KG knows those facts and their right answers, so after every model
batch the pipeline

1. asks the model each neighbour of the batch — every fact the model should know that shares a
   subject or an object with it, and a seeded draw of the facts of its relations — on one training
   prompt, before and after the edit;
2. queues the facts it answered right before and wrong after (``drifted``);
3. writes the queued facts (at most ``repair`` per batch, oldest first) into the model with the
   next batch — or, when no batch follows in the same call, as a batch of their own — and records
   them in the ledger as a ``repair`` entry, which ``oneedit history`` lists.

The neighbour probes are also what :mod:`oneedit.neighbours` hands the solve as preserved prompts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from oneedit.core import Triple


class Repairs:
    """The drift probes and the repair queue of one facade."""

    def __init__(self, kg, limit: int = 8, *, per_relation: int = 32, seed: int = 0):
        self.kg = kg
        self.limit = limit
        self.per_relation = per_relation  # same-relation neighbours probed per batch (0: all)
        self.rng = random.Random(seed)
        self.queue: dict[tuple[str, str], Triple] = {}
        self.causes: dict[tuple[str, str], str] = {}  # slot -> the model edit that knocked it over

    def neighbours(self, facts: Sequence[Triple]) -> list[Triple]:
        """KG facts the model should know that share a subject, relation or object with ``facts``:
        every fact of the same entities, and a fresh draw of ``per_relation`` facts of each edited
        relation (all of a relation's facts would make each batch probe most of the KG, and a
        batch can repair only a few; the audit finds the rest)."""
        from oneedit.knowledge import kg_triples

        ents = {t.subject for t in facts} | {t.object for t in facts}
        rels = {t.relation for t in facts}
        slots = {(t.subject, t.relation) for t in facts}
        near, same_rel = [], {}
        for t in kg_triples(self.kg):
            if (t.subject, t.relation) in slots:
                continue
            if t.subject in ents or t.object in ents:
                near.append(t)
            elif t.relation in rels:
                same_rel.setdefault(t.relation, []).append(t)
        for r in sorted(same_rel):
            pool = same_rel[r]
            near += pool if not self.per_relation or len(pool) <= self.per_relation \
                else self.rng.sample(pool, self.per_relation)
        return sorted(near)

    def probe(self, em, triples: Sequence[Triple]) -> list[bool]:
        """Whether the model gives each fact's object on the relation's first training prompt."""
        from editor.probe import teacher_forced
        from oneedit.knowledge import Labeller, verbalizer

        verb = verbalizer(self.kg.schema)
        label = Labeller(self.kg)
        prompts, index = [], []
        for i, t in enumerate(triples):
            if verb.prompt_templates(t.relation, "train"):
                prompts.append(verb.prompt(label.fact(t), "train", 0))
                index.append(i)
        ok = [True] * len(triples)
        exact: list[bool] = []
        if prompts:
            teacher_forced(em.model, em.codec, prompts, all_correct=exact)
        for i, e in zip(index, exact, strict=True):
            ok[i] = e
        return ok

    def take(self, facts: Sequence[Triple]) -> list[Triple]:
        """Queued repairs to write with ``facts`` (never a slot ``facts`` already writes), still true
        in the KG; they leave the queue."""
        slots = {(t.subject, t.relation) for t in facts}
        out = []
        for key in list(self.queue):
            if len(out) >= self.limit:
                break
            t = self.queue.pop(key)
            if key in slots or not self._holds(t):
                continue
            out.append(t)
        return out

    def note(self, drifted: Sequence[Triple], cause: str = "") -> None:
        """Queue KG facts the model drifted on after model edit ``cause`` (a slot noted again takes
        the newer fact, keeping its place in the queue)."""
        for t in drifted:
            self.queue[(t.subject, t.relation)] = t
            if cause:
                self.causes[(t.subject, t.relation)] = cause

    def cause_of(self, t: Triple) -> str:
        return self.causes.pop((t.subject, t.relation), "")

    def _holds(self, t: Triple) -> bool:
        from oneedit.knowledge import holds

        return holds(self.kg, t)
