"""Rolling edits back on both sides, with the edits that depend on them.

An applied edit is undone as a transaction of its own, journaled like an edit (``rollback_journal``
in its record): its KG revision reverted (a new revision tagged ``rollback of edit #N``), then its
model edit undone (with the repair batches it set off; a batch shared with other edits of an
import is rewritten without it; an edit consolidation folded into the weights is rewritten as the
KG now stands). A crash in between is finished on the next open (:meth:`Rollbacks.finish`).

Later edits that build on it (same subject and relation, or an entity it created) make a rollback
refuse and name them, unless ``cascade`` rolls them back too — and a cascade reaches only the
edits the caller may roll back (authors are checked one by one; others' edits are counted, never
named).
"""

from __future__ import annotations

from oneedit.core import OneEditError, PermissionDenied, Triple
from oneedit.core.edit_record import EditRecord, RollbackJournal
from oneedit.core.faults import fault
from oneedit.core.plan import EditPlan
from oneedit.model_sync import repair_batch
from oneedit.transaction import short
from controller.users import may, require

ROLLBACK_TAG = "rollback of edit #{id}: "


class DependentEdits(OneEditError):
    """Later edits build on the one being rolled back."""


class EditStateError(OneEditError):
    """The edit is not in the state the action needs (e.g. rolling back one that is not applied)."""


def _touched(plan: EditPlan | None) -> tuple[set[tuple[str, str]], set[str]]:
    """The (subject, relation) slots a plan changes and the entities it creates."""
    if plan is None:
        return set(), set()
    keys = {(t.subject, t.relation) for t in (*plan.diff.added, *plan.diff.removed) if not t.is_meta}
    return keys, {e.id for e in plan.new_entities}


def _objects(plan: EditPlan | None) -> set[str]:
    return set() if plan is None else {t.object for t in (*plan.diff.added, *plan.diff.removed)}


def entry_in(ledger, edit_id: int, status: str | None = None):
    """The ledger row of ``edit_id`` (in ``status``), or a clear error."""
    entry = ledger.get(edit_id)
    if entry is None:
        raise OneEditError(f"No edit #{edit_id} in the ledger.", hint="List edits with `oneedit history`.")
    if status and entry.status != status:
        raise EditStateError(f"Edit #{edit_id} is {entry.status}, not {status}.",
                             hint="See it with `oneedit history --json`.")
    return entry


class Rollbacks:
    def __init__(self, system):
        self.sys = system

    def dependents(self, edit_id: int) -> list[int]:
        """Applied edits after ``edit_id`` that build on it (directly or through one another):
        they change a fact on the same (subject, relation) or use an entity it created."""
        entry = entry_in(self.sys.ledger, edit_id)
        touched, created = _touched(entry.record.plan)
        out: list[int] = []
        for later in self.sys.ledger.list(status="applied", after=edit_id, limit=None, ascending=True):
            t2, c2 = _touched(later.record.plan)
            used = {s for s, _ in t2} | _objects(later.record.plan)
            if touched & t2 or created & used:
                out.append(later.id)
                touched |= t2
                created |= c2
        return out

    def rollback(self, edit_id: int, actor, *, cascade: bool = False) -> dict:
        """Undo an applied edit on both sides, with its derived facts. Later edits that depend on
        it make this refuse (listing them), unless ``cascade`` rolls them back first."""
        ledger = self.sys.ledger
        entry = entry_in(ledger, edit_id)
        if entry.status != "applied":
            raise EditStateError(f"Edit #{edit_id} is {entry.status}; only applied edits can be rolled back.",
                                 hint="See `oneedit history`.", details={"edit": edit_id, "status": entry.status})
        require(actor, "rollback", entry.author, what=f"Edit #{edit_id}")
        deps = self.dependents(edit_id)
        # a cascade reaches only what the caller may roll back; others' edits are counted, not named
        mine = [d for d in deps if may(actor, "rollback", ledger.get(d).author)]
        others = len(deps) - len(mine)
        named = ", ".join(f"#{d}" for d in mine) + (" and " if mine and others else "") + \
            (f"{others} edit(s) by other users" if others else "")
        if deps and not cascade:
            raise DependentEdits(
                f"Edit #{edit_id} cannot be rolled back alone: later edits build on it: {named}.",
                hint=f"Roll them back first, or `oneedit rollback {edit_id} --cascade` to roll back all of them."
                     if not others else "A curator can roll back the other users' edits (with --cascade).",
                details={"edit": edit_id, "dependents": mine, "others": others})
        if others:
            raise PermissionDenied(f"Rolling back edit #{edit_id} with --cascade would roll back {others} edit(s) "
                                   f"by other users; {actor.name} ({actor.role}) can roll back only their own.",
                                   hint="Ask a curator to roll it back.", details={"edit": edit_id, "others": others})
        done = [self.one(d, actor.name) for d in reversed(deps)]
        done.append(self.one(edit_id, actor.name))
        return {"rolled_back": [r["edit"] for r in done], "details": done}

    def rollback_to(self, rev: int, actor) -> dict:
        """Return the KG to revision ``rev`` and the model to the matching state: every applied edit
        after it is rolled back (newest first), then any other KG change after it is reverted."""
        require(actor, "rollback_to")
        kg = self.sys.kg
        head = kg.store.head()
        if rev < 0 or rev > head:
            raise OneEditError(f"There is no revision r{rev}: revisions run from r0 to r{head}.",
                               hint="List them with `oneedit kg log`.")
        later = [e for e in self.sys.ledger.list(status="applied", limit=None) if (e.kg_revision or 0) > rev]
        # (each edit's rollback also undoes the repair batches it caused, see _undo_model)
        done = [self.one(e.id, actor.name) for e in sorted(later, key=lambda e: -e.id)]
        restored = kg.restore(rev, author=actor.name)
        return {"to": rev, "rolled_back": [d["edit"] for d in done],
                "restored_revision": restored.id if restored else None, "head": kg.store.head()}

    def finish(self) -> list[dict]:
        """Finish the rollbacks a crash interrupted (run on open, after the edits are recovered)."""
        out = []
        for entry in self.sys.ledger.list(status="applied", limit=None):
            rj = entry.record.rollback_journal
            if rj:
                self.one(entry.id, rj.by or entry.author)
                out.append({"edit": entry.id, "rollback_finished": True})
        return out

    # -- one edit, journaled -----------------------------------------------------------------------
    def one(self, edit_id: int, by: str) -> dict:
        ledger = self.sys.ledger
        entry = entry_in(ledger, edit_id, "applied")
        record = entry.record.but(rollback_journal=RollbackJournal("kg", by))
        ledger.update(edit_id, record=record)
        rev = self._revert_kg(edit_id, entry.kg_revision, by, entry.text)
        fault("rollback_kg")
        record = record.but(rollback_journal=RollbackJournal("model", by, rev))
        ledger.update(edit_id, record=record)
        model = self._undo_model(edit_id, record)
        fault("rollback_model")
        ledger.update(edit_id, status="rolled_back", record=record.but(
            rollback_journal=None, rollback={"by": by, "kg_revision": rev, "model": model}))
        if by != entry.author:
            self.sys.users.adjust_trust(entry.author, "rolled_back")
        return {"edit": edit_id, "kg_revision": rev, "model": model}

    def _revert_kg(self, edit_id: int, rev_id: int | None, by: str, text: str) -> int | None:
        if rev_id is None:
            return None
        store = self.sys.kg.store
        tag = ROLLBACK_TAG.format(id=edit_id)
        done = [r for r in store.log.list(limit=50, after=rev_id) if r.message.startswith(tag)]
        if done:  # a crash after the revert committed: nothing more to do
            return done[0].id
        diff, _skipped = store.plan_revert(rev_id)
        rev = store.commit(diff, by, tag + short(text))
        return rev.id if rev else None

    def _undo_model(self, edit_id: int, record: EditRecord) -> dict | None:
        from oneedit.knowledge import holds

        info = record.model_edit
        if info is None or not info.id or not self.sys.has_model():
            return None
        em, ledger, model_id = self.sys.model, self.sys.ledger, info.id
        if model_id not in em.edit_ids():
            from oneedit.models import folded_edits

            if model_id in folded_edits(self.sys.ws, em.loaded.name):
                return self._rewrite_folded(edit_id, info)
            return {"id": model_id, "note": "already gone"}
        shared = [i for i in info.shared_with or () if i != edit_id]
        # repairs of what this edit knocked over, written as batches of their own, go with it
        # (only batches of repairs alone: a later edit's batch that carried some keeps them)
        live = set(em.edit_ids())
        repairs = [r["model_edit"] for r in ledger.repairs(live=True)
                   if model_id in r["caused_by"] and r["model_edit"] in live and repair_batch(r["model_edit"])]
        for rid in repairs:  # newest first
            em.undo(rid, recheck=False)
            ledger.repair_undone(rid)
        report = em.undo(model_id)
        out = {"id": model_id, "reapplied": report.get("reapplied", []), "repairs_undone": repairs}
        if shared:
            # a batch (import): the other edits of the batch keep their facts in the model
            keep = [e for e in (ledger.get(o) for o in shared) if e is not None and e.status == "applied"]
            facts = [Triple(*f) for e in keep for f in (e.record.model_edit.written if e.record.model_edit else ())]
            facts = [t for t in facts if holds(self.sys.kg, t)]
            if facts:
                new_id = f"{model_id}-r{edit_id}"
                self.sys.sync.edit(new_id, facts, info.method, probe=False)
                ids = tuple(e.id for e in keep)
                for e in keep:
                    ref = e.record.model_edit.but(id=new_id, shared_with=ids) if e.record.model_edit else None
                    ledger.update(e.id, record=e.record.but(model_edit=ref))
                out["rewritten_as"] = new_id
        return out

    def _rewrite_folded(self, edit_id: int, info) -> dict:
        """Roll back the model side of an edit that consolidation folded into the weights: write what
        the KG now holds for the edit's (subject, relation) slots (the gap where it holds nothing)
        as a new model edit. The next consolidation makes it exact (the model is rebuilt from the
        KG without the edit)."""
        from oneedit.knowledge import slot_facts

        slots = {(f[0], f[1]) for f in info.written}
        facts = [t for s, r in sorted(slots) for t in slot_facts(self.sys.kg, s, r)]
        facts = [t for t in facts if not t.is_gap or self.sys.ws.config.consistency.retract]
        out = {"id": info.id, "folded": True}
        if facts:
            new_id = f"{info.id}-r{edit_id}"
            self.sys.sync.edit(new_id, facts, info.method, probe=False)
            out["rewritten_as"] = new_id
        return out
