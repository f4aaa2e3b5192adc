"""The model audit: does the model say what the KG says?

The KG is an oracle no other editing tool has: it lists every fact the model is meant to know (the
functional relations, stored and derived, see :mod:`oneedit.knowledge`). The audit asks the model
each of them, on the relation's training templates and on its held-out ones, and reports greedy
exact-match agreement by group:

* ``edited``   — facts written into the model by live edits (from the ledger: every applied edit's
  model facts, derived ones included) that the KG still holds;
* ``unedited`` — everything else the model learned;
* ``all``      — both;
* ``retracted`` — the slots live edits emptied (a retraction without a replacement), which the model
  should now answer with "unknown" (:data:`oneedit.core.GAP_LABEL`); not counted in ``all``.

Exact match is read from one teacher-forced pass per batch (every target token ranked first given
the gold prefix ⇔ greedy decoding reproduces the target, see :func:`editor.probe.teacher_forced`);
only the prompts that disagree are generated, to report what the model said instead.

Held-out prompts: for facts the model learned in training, only the held-out phrasings it never
saw for that fact count (the default model teaches them on a fixed share of facts, see
:func:`editor.knowledge.phrasing_fact`); for edited facts all of them, since an edit writes the
training phrasings only.

``sample=N`` audits a seeded uniform sample of N facts instead and adds a 95% Wilson interval to
each agreement, for models too large to probe whole.

:class:`AuditLog` keeps the per-fact results so a service can refresh only the facts a batch
touched (:meth:`AuditLog.refresh`) and report agreement at any time without re-reading the KG.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from oneedit.core import Triple

GROUPS = ("edited", "unedited", "all", "retracted")


@dataclass(frozen=True, slots=True)
class FactResult:
    """One fact's audit: how many of its prompts the model answers as the KG does."""

    triple: Triple
    edited: bool
    train: tuple[bool, ...]
    heldout: tuple[bool, ...]

    @property
    def agrees(self) -> bool:
        return all(self.train)


@dataclass
class Disagreement:
    subject: str
    relation: str
    expected: str
    said: str
    prompt: str

    def to_dict(self) -> dict:
        return {"subject": self.subject, "relation": self.relation, "expected": self.expected,
                "said": self.said, "prompt": self.prompt}


def edited_facts(ledger, live_model_edits: Iterable[str] | None = None) -> set[tuple[str, str]]:
    """``(subject, relation)`` of every fact an applied edit wrote into the model.

    ``live_model_edits``: the model's edit ids; an applied ledger entry whose model edit is no longer
    in the model (undone, or made to another model) does not count.
    """
    live = set(live_model_edits) if live_model_edits is not None else None
    out: set[tuple[str, str]] = set()
    for e in ledger.list(status="applied", limit=None):
        info = e.record.model_edit
        if info is None or not info.id or (live is not None and info.id not in live):
            continue
        for f in info.written:
            out.add((f[0], f[1]))
    return out


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (scipy's, which handles 0 and n)."""
    if n == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (round(float(ci.low), 4), round(float(ci.high), 4))


class AuditLog:
    """Per-fact audit results for one model over one KG, refreshed in part or in whole."""

    def __init__(self, kg, model, codec, *, share: float = 0.0, batch_size: int = 256):
        from oneedit.knowledge import Labeller, verbalizer

        self.kg = kg
        self.model = model
        self.codec = codec
        self.share = share
        self.batch_size = batch_size
        self.verb = verbalizer(kg.schema)
        self.label = Labeller(kg)
        self.results: dict[tuple[str, str], FactResult] = {}
        self.updated = 0.0

    # -- probing ---------------------------------------------------------------------------------
    def _prompts(self, t: Triple, edited: bool):
        from editor.knowledge import phrasing_fact

        f = self.label.fact(t)
        train = self.verb.prompts(f, "train")
        heldout = self.verb.prompts(f, "heldout")
        if not edited and phrasing_fact(f, self.share):
            heldout = []
        return train, heldout

    def probe(self, triples: Sequence[Triple], edited: set[tuple[str, str]]) -> list[FactResult]:
        """Ask the model every prompt of ``triples``; the results replace any held for them."""
        from editor.probe import teacher_forced

        plan = []
        prompts = []
        for t in triples:
            is_edited = (t.subject, t.relation) in edited
            train, heldout = self._prompts(t, is_edited)
            plan.append((t, is_edited, len(train), len(heldout)))
            prompts += train + heldout
        exact: list[bool] = []
        if prompts:
            teacher_forced(self.model, self.codec, prompts, batch_size=self.batch_size, all_correct=exact)
        out = []
        i = 0
        for t, is_edited, n_train, n_held in plan:
            r = FactResult(t, is_edited, tuple(exact[i: i + n_train]), tuple(exact[i + n_train: i + n_train + n_held]))
            i += n_train + n_held
            self.results[(t.subject, t.relation)] = r
            out.append(r)
        self.updated = time.time()
        return out

    def run(self, edited: set[tuple[str, str]], *, sample: int | None = None, seed: int = 0) -> list[FactResult]:
        """Audit every fact the model should know (or a seeded sample of ``sample`` of them): the
        KG's facts, and the gaps of the edited slots the KG now leaves empty."""
        from oneedit.knowledge import kg_triples

        triples = kg_triples(self.kg)
        gaps = self.gaps(triples, edited)  # as many as the live edits made: never sampled
        if sample is not None and sample < len(triples):
            triples = sorted(random.Random(seed).sample(triples, sample))
        self.results = {}
        return self.probe(triples + gaps, edited)

    def gaps(self, triples: list[Triple], edited: set[tuple[str, str]]) -> list[Triple]:
        """The edited slots the KG (``triples``) leaves empty, as gaps."""
        from oneedit.knowledge import slot_facts

        held = {(t.subject, t.relation) for t in triples}
        return [g for s, r in sorted(edited - held) if r in self.kg.schema.relations
                for g in slot_facts(self.kg, s, r) if g.is_gap]

    def refresh(self, touched: Iterable[Triple], edited: set[tuple[str, str]]) -> list[FactResult]:
        """Re-audit the facts that share a subject, relation or object with ``touched`` (what a
        batch of edits may have moved), and drop results for facts the KG no longer holds."""
        touched = list(touched)
        subjects = {t.subject for t in touched} | {t.object for t in touched}
        relations = {t.relation for t in touched}
        from oneedit.knowledge import kg_triples

        current = kg_triples(self.kg)
        current += self.gaps(current, edited)
        keys = {(t.subject, t.relation) for t in current}
        for k in [k for k in self.results if k not in keys]:
            del self.results[k]
        near = [t for t in current
                if t.subject in subjects or t.object in subjects or t.relation in relations
                or (t.subject, t.relation) not in self.results]
        return self.probe(near, edited)

    # -- reporting -------------------------------------------------------------------------------
    def disagreements(self, limit: int | None = 50) -> list[Disagreement]:
        """The first failing training prompt of each disagreeing fact, with what the model said."""
        from editor.probe import continuations

        bad = [r for r in self.results.values() if not r.agrees]
        bad.sort(key=lambda r: (not r.edited, r.triple.subject, r.triple.relation))
        if limit is not None:
            bad = bad[:limit]
        prompts = []
        for r in bad:
            train, _ = self._prompts(r.triple, r.edited)
            prompts.append(train[r.train.index(False)])
        said = continuations(self.model, self.codec, prompts, batch_size=self.batch_size) if prompts else []
        return [Disagreement(r.triple.subject, r.triple.relation, p.target.strip(), s.strip(), p.text)
                for r, p, s in zip(bad, prompts, said, strict=True)]

    def summary(self, *, sampled: bool = False, limit: int | None = 50) -> dict:
        out: dict = {}
        for group in GROUPS:
            rs = [r for r in self.results.values() if r.triple.is_gap == (group == "retracted")
                  and (group in ("all", "retracted") or r.edited == (group == "edited"))]
            train = [x for r in rs for x in r.train]
            held = [x for r in rs for x in r.heldout]
            g = {"facts": len(rs),
                 "agreement": round(sum(train) / len(train), 4) if train else None,
                 "heldout_agreement": round(sum(held) / len(held), 4) if held else None,
                 "facts_agreeing": round(sum(r.agrees for r in rs) / len(rs), 4) if rs else None,
                 "prompts": len(train), "heldout_prompts": len(held)}
            if sampled:
                # facts are the sampled unit; prompts of one fact are not independent
                g["facts_agreeing_ci95"] = wilson(sum(r.agrees for r in rs), len(rs))
            out[group] = g
        out["disagreements"] = [d.to_dict() for d in self.disagreements(limit)]
        return out


@dataclass
class AuditReport:
    model: str
    edits: int
    kg_revision: int | None
    sampled: int | None
    seconds: float
    groups: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model": self.model, "edits": self.edits, "kg_revision": self.kg_revision,
                "sample": self.sampled, "seconds": self.seconds, **self.groups}


def audit(ws, em, *, sample: int | None = None, seed: int = 0, limit: int | None = 50) -> AuditReport:
    """Audit ``em`` (an :class:`editor.session.EditableModel`) against the workspace's KG."""
    from oneedit.models import _share

    started = time.perf_counter()
    log = AuditLog(ws.kg, em.model, em.codec, share=_share(em.loaded.card))
    from oneedit.models import folded_edits

    edited = edited_facts(ws.ledger, set(em.edit_ids()) | folded_edits(ws, em.loaded.name))
    log.run(edited, sample=sample, seed=seed)
    groups = log.summary(sampled=sample is not None, limit=limit)
    return AuditReport(em.loaded.name, len(em.manifest), ws.kg.store.head(), sample,
                       round(time.perf_counter() - started, 2), groups)
