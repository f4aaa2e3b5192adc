"""The model side of an edit: the facts written into the model, kept in step with the KG.

:class:`ModelSync` writes a batch of facts into the workspace's model (MEMIT delta or GRACE
entries) together with the repairs queued for facts earlier edits knocked over and with the KG
neighbours held in place (:mod:`oneedit.neighbours`); probes the model before and after; and
audits it against the KG (:mod:`oneedit.audit`). It changes the model only: the ledger and the KG
are the transaction's (:mod:`oneedit.transaction`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from oneedit.core import OneEditError, Triple


def repair_batch(model_id: str) -> bool:
    """Whether ``model_id`` is a model batch of repairs alone (``r<n>``, see :meth:`ModelSync.flush_repairs`)."""
    return model_id[:1] == "r" and model_id[1:].isdigit()


class ModelSync:
    def __init__(self, system):
        self.sys = system
        self._repairs = None
        self._audit: tuple | None = None

    def reset(self) -> None:
        """Forget what was measured on the previous weights (after consolidation swapped them)."""
        self._repairs = None  # drift probes queued against the previous weights
        self._audit = None

    @property
    def repairs(self):
        if self._repairs is None:
            from oneedit.repair import Repairs

            cfg = self.sys.ws.config.consistency
            self._repairs = Repairs(self.sys.kg, cfg.repair, per_relation=cfg.probe_per_relation)
        return self._repairs

    def check_writable(self) -> None:
        """Raise before anything is written when the model's edits cannot be saved."""
        if self.sys.has_model():
            self.sys.model.check_writable()

    def edit(self, model_id: str, facts: Sequence[Triple], method: str, *, probe: bool = True,
             flush: bool = True) -> dict | None:
        """Write ``facts`` into the model as the model edit ``model_id`` (with queued repairs and the
        KG neighbours held in place, see :mod:`oneedit.repair`); ``flush``: write the repairs this
        edit queues right away, as their own batch (an import passes False: its next batch takes
        them). Returns what was written, with the answers before and after when ``probe``."""
        em = self.sys.model
        if em is None:
            return None
        if not self.sys.ws.config.consistency.retract:
            facts = [t for t in facts if not t.is_gap]
        if not facts:
            return {"id": None, "method": method, "facts": [], "note": "no fact the model answers changed"}
        probes = self.probe_prompts(facts) if probe else []
        before = self.answers(probes) if probe else []
        started = time.perf_counter()
        upkeep = self._write(model_id, list(facts), method)
        seconds = time.perf_counter() - started
        out = {"id": model_id, "method": method, "facts": [list(t.as_tuple()) for t in facts],
               "seconds": round(seconds, 3), **upkeep}
        if probe:
            after = self.answers(probes)
            out["answers"] = [{"prompt": p.text, "split": split, "expected": p.target.strip(), "before": b, "after": a,
                               "ok": a.strip().casefold().startswith(p.target.strip().casefold()),
                               "fact": list(t.as_tuple())}
                              for (split, p, t), b, a in zip(probes, before, after, strict=True)]
        if flush:
            self.flush_repairs(method)
        return out

    def _write(self, model_id: str, facts: list[Triple], method: str) -> dict:
        """One model batch: ``facts`` plus queued repairs, KG neighbours as preserved prompts; the
        neighbours it knocks over are queued. Returns what it repaired and how many drifted."""
        from oneedit.models import fact_requests
        from oneedit.neighbours import keep_prompts

        em, kg, ledger = self.sys.model, self.sys.kg, self.sys.ledger
        cfg = self.sys.ws.config.consistency
        extra = self.repairs.take(facts) if cfg.repair else []
        write = facts + extra
        if not write:
            return {"repaired": [], "drifted": 0}
        keep = keep_prompts(kg, write, limit=cfg.keep_neighbours) if cfg.keep_neighbours and method == "memit" else ()
        near = self.repairs.neighbours(write) if cfg.repair else []
        ok_before = self.repairs.probe(em, near) if near else []
        em.edit(model_id, fact_requests(self.sys.ws, write), method, keep=keep)
        drifted = []
        if near:
            ok_after = self.repairs.probe(em, near)
            drifted = [t for t, b, a in zip(near, ok_before, ok_after, strict=True) if b and not a]
            self.repairs.note(drifted, cause=model_id)
        if extra:
            causes = sorted({c for t in extra if (c := self.repairs.cause_of(t))})
            ledger.add_repair(model_id, [list(t.as_tuple()) for t in extra], causes)
        return {"repaired": [list(t.as_tuple()) for t in extra], "drifted": len(drifted)}

    def flush_repairs(self, method: str = "memit") -> dict | None:
        """Write the queued repairs now, as a model batch of their own."""
        em = self.sys.model
        if em is None or self._repairs is None or not self._repairs.queue:
            return None
        n = len(self.sys.ledger.repairs()) + 1  # never a name an undone repair batch had
        while f"r{n}" in em.edit_ids():
            n += 1
        out = self._write(f"r{n}", [], method)
        return {"id": f"r{n}", **out} if out["repaired"] else None

    def discard(self, model_id: str) -> bool | None:
        """Drop the model edit ``model_id`` of an edit that did not complete, with the repair batches
        it set off (written right after it, newest first). Returns whether the model had it."""
        if not self.sys.has_model():
            return None
        em, ledger = self.sys.model, self.sys.ledger
        for r in ledger.repairs(live=True):
            if model_id in r["caused_by"] and repair_batch(r["model_edit"]):
                em.discard(r["model_edit"])
                ledger.repair_undone(r["model_edit"])
        discarded = em.discard(model_id)
        for r in ledger.repairs(live=True):  # what it carried went with it
            if r["model_edit"] == model_id:
                ledger.repair_undone(model_id)
        return discarded

    def probe_prompts(self, facts: Sequence[Triple]) -> list:
        """``(split, prompt, fact)``: one training and one held-out prompt per fact."""
        from oneedit.knowledge import Labeller, verbalizer

        verb = verbalizer(self.sys.kg.schema)
        label = Labeller(self.sys.kg)
        out = []
        for t in facts:
            f = label.fact(t)
            for split in ("train", "heldout"):
                ps = verb.prompts(f, split)
                if ps:
                    out.append((split, ps[0], t))
        return out

    def answers(self, probes) -> list[str]:
        """The model's greedy continuation of each probe's prompt (``probes`` as :meth:`probe_prompts`)."""
        if not probes:
            return []
        from editor.probe import continuations

        em = self.sys.model
        return [a.strip() for a in continuations(em.model, em.codec, [p[1] for p in probes])]

    def audit(self, *, sample: int | None = None, seed: int = 0) -> dict:
        """The model audited against the KG (:mod:`oneedit.audit`); reused while neither the KG nor
        the model's edits changed."""
        from oneedit.audit import audit

        em = self.sys.model
        if em is None:
            raise OneEditError("This workspace has no model to audit.", hint="Train one with `oneedit model train`.")
        key = (self.sys.kg.store.head(), tuple(em.edit_ids()), sample, seed)
        if self._audit is None or self._audit[0] != key:
            self._audit = (key, audit(self.sys.ws, em, sample=sample, seed=seed, limit=20).to_dict())
        return self._audit[1]
