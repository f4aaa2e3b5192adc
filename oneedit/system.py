"""The OneEdit facade: one object the CLI, the chat and the service use for everything.

``OneEdit.open(workspace)`` gives the workspace's KG, ledger, users, the interpreter, the planner
and (loaded on first use) the editable model, and finishes or undoes whatever a crash left in
flight. An edit is one transaction across the ledger, the KG and the model:

1. the ledger row is written (``pending``) with the plan;
2. its ``journal`` says ``kg``; the KG diff is committed as one revision tagged ``edit #N``;
3. the journal says ``model``; the model edit ``eN`` is written (MEMIT delta or GRACE entries);
4. the row becomes ``applied`` and the journal is dropped.

On open, every row still ``pending`` is undone (its tagged KG revision reverted, its model edit
discarded) and marked ``failed``; an interrupted rollback is finished. So after a crash at any
stage the ledger, the KG and the model agree: the edit happened entirely or not at all.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from oneedit.core import EditIntent, InputError, Mention, OneEditError, Triple
from oneedit.core.faults import fault
from oneedit.core.plan import EditPlan
from oneedit.core.safe_text import check_text
from controller.users import may, require

EDIT_OPS = ("assert", "replace", "retract")
KG_TAG = "edit #{id}: "
ROLLBACK_TAG = "rollback of edit #{id}: "
MAX_ATTEMPTS = 3  # a queued request interrupted this often is marked failed, not retried again


class DependentEdits(OneEditError):
    """Later edits build on the one being rolled back."""


class EditStateError(OneEditError):
    """The edit is not in the state the action needs (e.g. rolling back one that is not applied)."""


@dataclass
class Outcome:
    """What happened to one request."""

    edit: int | None
    status: str                    # applied | rejected | needs_review | noop | cancelled
    plan: EditPlan | None
    text: str = ""
    model: dict | None = None      # the model edit and answers before/after
    seconds: float = 0.0
    author: str = ""

    def to_dict(self) -> dict:
        return {"edit": self.edit, "status": self.status, "text": self.text, "author": self.author,
                "plan": self.plan.to_dict() if self.plan else None, "model": self.model,
                "seconds": round(self.seconds, 3)}


def _fact_key(t: Triple) -> tuple[str, str]:
    return (t.subject, t.relation)


class OneEdit:
    def __init__(self, ws, *, user: str | None = None, model: str | None = None, device: str | None = None,
                 load_model: bool = True, progress: Callable[[str], None] | None = None):
        from controller.users import ProtectedFacts, RateLimit, TrustPolicy, UserStore

        self.ws = ws
        self.kg = ws.kg
        self.ledger = ws.ledger
        pol = ws.config.policy
        self.trust = TrustPolicy.from_dict(pol.trust)
        self.rate_limit = RateLimit.from_dict(pol.rate_limit)
        self.users = UserStore(ws.root / "ledger.sqlite", self.trust, owner=ws.config.user, token_days=pol.token_days)
        self.protected = ProtectedFacts(ws.root / "ledger.sqlite")
        self.users.ensure(ws.config.user, "admin")
        self.user = user or ws.config.user
        self._model_name = model
        self._device = device
        self._load_model = load_model
        self._em = None
        self._interp = None
        self._safety = None
        self._controller = None
        self._repairs = None
        self._audit: tuple | None = None
        self._step = progress or (lambda msg: None)

    @classmethod
    def open(cls, root: str | Path | None = None, **kw) -> OneEdit:
        from oneedit.workspace import Workspace

        ws = Workspace.open(root)
        try:
            sys_ = cls(ws, **kw)
        except BaseException:
            ws.close()
            raise
        try:
            sys_.recover()
        except BaseException:
            sys_.close()
            raise
        return sys_

    def close(self) -> None:
        self.users.close()
        self.protected.close()
        self.ws.close()

    def __enter__(self) -> OneEdit:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- parts -----------------------------------------------------------------------------------
    @property
    def interpreter(self):
        if self._interp is None:
            from interpreter import Interpreter

            self._interp = Interpreter.from_kg(self.kg)
        return self._interp

    @property
    def controller(self):
        """The Controller stage (:class:`controller.stage.Controller`): every check and the decision."""
        if self._controller is None:
            from controller.planner import ResolutionPolicy
            from controller.stage import Controller

            self._controller = Controller(self.kg, policy=ResolutionPolicy.from_dict(self.ws.config.policy.resolution),
                                          protected=self.protected, safety=self.safety, users=self.users,
                                          trust=self.trust)
        return self._controller

    def planner(self):
        return self.controller.planner()

    @property
    def safety(self):
        if self._safety is None:
            from controller.safety import ChatModerator, SafetyChecker, ToxicityCheck

            cfg = dict(self.ws.config.policy.toxicity)
            enabled = cfg.pop("enabled", True)
            lexicon = "default" if cfg.pop("lexicon", True) else None
            moderator = None
            if self.ws.config.policy.moderator:
                from interpreter.llm import chat_model_from_spec

                moderator = ChatModerator(chat_model_from_spec(self.ws.config.policy.moderator))
            self._safety = SafetyChecker(ToxicityCheck(**cfg) if enabled else None, moderator, lexicon=lexicon)
        return self._safety

    def has_model(self) -> bool:
        from oneedit.models import DEFAULT, has_default

        if not self._load_model:
            return False
        name = self._model_name or self.ws.config.model.name
        return name != DEFAULT or has_default(self.ws)

    @property
    def model(self):
        """The editable model with its saved edits, or ``None`` when the workspace has none."""
        if self._em is None and self.has_model():
            from oneedit.models import open_model

            self._em = open_model(self.ws, self._model_name, device=self._device, progress=self._step)
        return self._em

    def reload_model(self) -> None:
        """Open the model again from disk (after consolidation swapped its weights)."""
        self._em = None
        self._audit = None
        self._repairs = None  # drift probes queued against the previous weights

    def actor(self, name: str | None = None):
        return self.users.get(name or self.user)

    # -- planning --------------------------------------------------------------------------------
    def parse(self, text: str):
        return self.interpreter.parse(text)

    def plan(self, intents: Sequence[EditIntent], *, user=None, text: str = "") -> EditPlan:
        """The Controller's decided plan for ``intents`` (see :meth:`controller.stage.Controller.decide`)."""
        user = user if user is not None and not isinstance(user, str) else self.actor(user)
        return self.controller.decide(intents, user, text)

    # -- submitting ------------------------------------------------------------------------------
    def submit(self, text: str = "", *, intents: Sequence[EditIntent] | None = None, user: str | None = None,
               method: str | None = None, confirm: Callable[[EditPlan], bool] | None = None,
               dry_run: bool = False, request_key: str | None = None, probe: bool = True) -> Outcome:
        """Interpret, check and (unless refused, declined or a dry run) apply one request."""
        started = time.perf_counter()
        u = self.actor(user)
        require(u, "edit")
        check_text(text, "request", newlines=True)
        if intents is None:
            intents = self.edit_intents(text)
        self.users.check_rate(u.name, u.role, self.ledger.recent_count(u.name), self.rate_limit)
        plan = self.plan(intents, user=u, text=text)
        if dry_run or plan.decision == "noop":
            return Outcome(None, "noop" if plan.decision == "noop" else "planned", plan, text,
                           seconds=time.perf_counter() - started, author=u.name)
        if plan.decision == "apply" and confirm is not None and not confirm(plan):
            return Outcome(None, "cancelled", plan, text, seconds=time.perf_counter() - started, author=u.name)
        record = {"plan": plan.to_dict(), "method": method or self.ws.config.policy.method}
        status = {"apply": "pending", "reject": "rejected", "needs_review": "needs_review"}[plan.decision]
        if status == "pending":
            self._check_model_writable()  # before anything is written: no row, no revision
        edit_id = self.ledger.create(u.name, text, record, status, request_key=request_key,
                                     entities=_entities(plan))
        fault("ledger")
        if status == "rejected":
            self.users.adjust_trust(u.name, "rejected")
            return Outcome(edit_id, "rejected", plan, text, seconds=time.perf_counter() - started, author=u.name)
        if status == "needs_review":
            return Outcome(edit_id, "needs_review", plan, text, seconds=time.perf_counter() - started, author=u.name)
        model = self._apply(edit_id, text, plan, u.name, record["method"], probe=probe)
        self.users.adjust_trust(u.name, "accepted")
        return Outcome(edit_id, "applied", plan, text, model, time.perf_counter() - started, u.name)

    def edit_intents(self, text: str) -> list[EditIntent]:
        """The edit intents of ``text``; an error that shows how it was read when it asks for none."""
        parsed = self.parse(text)
        intents = [i for i in parsed.intents if i.op in EDIT_OPS]
        if not intents:
            ops = ", ".join(sorted({i.op for i in parsed.intents})) or "nothing"
            raise OneEditError(f"{text!r} asks for no change to the KG (it reads as: {ops}).",
                               hint='State a fact, e.g. "The capital of France is Lyon"; ask questions '
                                    "with `oneedit ask`.", details={"parse": parsed.to_dict()})
        return intents

    def intents_from_triples(self, triples: Sequence[dict]) -> list[EditIntent]:
        """Edit intents from structured facts ``{"op", "subject", "relation", "object"}`` (optional
        ``subject_type`` / ``object_type`` for new entities). Names are entity ids, labels or
        aliases; a name that fits several entities raises :class:`AmbiguousRequest` with the
        options, as text requests do; an unknown name becomes a new entity (typed from the
        relation's domain or range, or the ``*_type`` given) except in a retraction."""
        if not triples:
            raise OneEditError("No facts given.", hint='Send e.g. [{"subject": "France", "relation": "capital", '
                                                       '"object": "Lyon"}].')
        out = []
        for n, t in enumerate(triples, 1):
            op = t.get("op") or "assert"
            if op not in EDIT_OPS:
                raise OneEditError(f"Fact {n}: op {op!r} is not one of {', '.join(EDIT_OPS)}.")
            for part in ("subject", "relation"):
                if not str(t.get(part) or "").strip():
                    raise OneEditError(f"Fact {n} has no {part}.", details={"fact": dict(t)})
            for part in ("subject", "relation", "object", "subject_type", "object_type"):
                check_text(str(t.get(part) or ""), f"{part} of fact {n}")
            rel = self.kg.resolve_relation(str(t["relation"])).id
            subj = self._named(str(t["subject"]), "subject", op, t.get("subject_type"))
            obj = None
            if str(t.get("object") or "").strip():
                obj = self._named(str(t["object"]), "object", op, t.get("object_type"))
            elif op != "retract":
                raise OneEditError(f"Fact {n} has no object; only a retraction may leave it out.")
            out.append(EditIntent(op, subj, rel, obj))
        return out

    def _named(self, name: str, role: str, op: str, new_type: str | None) -> Mention:
        from controller.planner import AmbiguousRequest
        from oneedit.core import UnknownEntityError

        name = " ".join(name.split())
        try:
            e = self.kg.resolve_entity(name)
            return Mention(e.label, entity=e, confidence=1.0)
        except UnknownEntityError as exc:
            ids = (exc.details or {}).get("candidates")
            if ids:
                options = [self.kg.store.entity(i) for i in ids]
                raise AmbiguousRequest(
                    f"{name!r} could be several entities: "
                    + ", ".join(f"{e.label} ({e.id})" for e in options if e) + ".",
                    hint="Send its id instead.",
                    details={"mention": name, "role": role, "candidates": ids,
                             "options": [{"id": e.id, "label": e.label, "description": e.description,
                                          "type": e.type} for e in options if e]}) from None
            if op == "retract":
                raise
        if new_type is not None and new_type not in self.kg.schema.types:
            raise OneEditError(f"Unknown type {new_type!r} for the new entity {name!r}.",
                               hint="Types: " + ", ".join(sorted(self.kg.schema.types)) + ".")
        return Mention(name, new_type=new_type)

    # -- the service's queue ---------------------------------------------------------------------
    def enqueue(self, text: str = "", *, triples: Sequence[dict] | None = None, user: str | None = None,
                method: str | None = None, request_key: str | None = None) -> int:
        """Accept a request for the service's worker; returns its ledger id (status ``queued``).

        Permission, rate limit, method and readability are checked now, so a bad request leaves no
        row; the plan is made later by :meth:`take`, in arrival order, against the KG as the
        earlier requests left it."""
        from controller.planner import require_choices

        u = self.actor(user)
        require(u, "edit")
        method = method or self.ws.config.policy.method
        if method not in ("memit", "grace"):
            raise OneEditError(f"Unknown editing method {method!r}.", hint="Use memit or grace.")
        check_text(text, "request", newlines=True)
        if triples:
            intents = self.intents_from_triples(triples)
            request = {"triples": [dict(t) for t in triples]}
            text = text or "; ".join(f"{t.get('op') or 'assert'} ({t['subject']}, {t['relation']}, "
                                     f"{t.get('object') or '*'})" for t in triples)
        else:
            if not text.strip():
                raise OneEditError("The request is empty.", hint='Send {"text": "The capital of France is Lyon"}.')
            intents = self.edit_intents(text)
            request = {"text": text}
        for i in intents:
            require_choices(i)
        self.users.check_rate(u.name, u.role, self.ledger.recent_count(u.name), self.rate_limit)
        record = {"request": request, "method": method, "via": "queue", "queued_at": time.time()}
        return self.ledger.create(u.name, text, record, "queued", request_key=request_key)

    def take(self, edit_id: int) -> EditPlan | None:
        """Plan a queued request against today's KG. Its row becomes ``pending`` (to be applied by
        :meth:`apply_taken` or :meth:`stage`), or ``rejected`` / ``needs_review`` / ``unchanged``.
        Returns the plan, or None when the request could not be planned (rejected, with the error)."""
        entry = self._entry(edit_id, "queued")
        record = entry.record
        request = record.get("request") or {}
        record["taken_at"] = time.time()
        try:
            u = self.actor(entry.author)
            intents = (self.intents_from_triples(request["triples"]) if request.get("triples")
                       else self.edit_intents(request.get("text", "")))
            plan = self.plan(intents, user=u, text=entry.text)
        except OneEditError as exc:
            record["error"] = exc.to_dict()
            self.ledger.update(edit_id, status="rejected", record=record)
            return None
        record["plan"] = plan.to_dict()
        status = {"apply": "pending", "reject": "rejected", "needs_review": "needs_review",
                  "noop": "unchanged"}[plan.decision]
        self.ledger.set_entities(edit_id, _entities(plan))
        self.ledger.update(edit_id, status=status, record=record)
        if status == "rejected":
            self.users.adjust_trust(entry.author, "rejected")
        return plan

    def apply_taken(self, edit_id: int, plan: EditPlan) -> dict | None:
        """Apply a taken (``pending``) request on its own: KG, then the model (GRACE, or a MEMIT
        batch of one)."""
        entry = self._entry(edit_id, "pending")
        record = entry.record
        model = self._apply(edit_id, entry.text, plan, entry.author, record.get("method", "memit"), record=record)
        if model is not None and model.get("answers"):
            entry = self.ledger.get(edit_id)
            rec = entry.record
            rec["model_edit"] = rec.get("model_edit", {}) | {"answers": model["answers"]}
            self.ledger.update(edit_id, record=rec)
        self.users.adjust_trust(entry.author, "accepted")
        return model

    def stage(self, edit_id: int, plan: EditPlan, batch: list) -> None:
        """Commit a taken request's KG change now and add it to ``batch``, whose model edit
        :meth:`finish_batch` makes (one MEMIT batch for all of them)."""
        entry = self._entry(edit_id, "pending")
        self._stage(edit_id, entry.text, plan, entry.author, entry.record, batch)

    def finish_batch(self, batch: list, *, probe: bool = False) -> dict:
        """The model edit of a staged batch; every row of it becomes ``applied``."""
        summary = {"applied": 0, "model_batches": 0}
        if batch:
            self._finish_batch(batch, batch[0][2].get("method", "memit"), summary, probe=probe)
        return summary

    def _stage(self, edit_id: int, text: str, plan: EditPlan, author: str, record: dict, batch: list) -> None:
        self._check_model_writable()
        head = self.kg.store.head()
        record["journal"] = {"stage": "kg", "head": head, "model_id": f"b{batch[0][0] if batch else edit_id}"}
        self.ledger.update(edit_id, record=record)
        rev = self.kg.store.commit(plan.diff, author, KG_TAG.format(id=edit_id) + _short(text),
                                        expect_head=plan.base_revision)
        fault("kg")
        record["journal"]["stage"] = "model"
        self.ledger.update(edit_id, kg_revision=rev.id if rev else None, record=record)
        batch.append((edit_id, plan, record))

    def _apply(self, edit_id: int, text: str, plan: EditPlan, author: str, method: str, *,
               probe: bool = True, record: dict | None = None) -> dict | None:
        record = record if record is not None else self.ledger.get(edit_id).record
        head = self.kg.store.head()
        record["journal"] = {"stage": "kg", "head": head}
        self.ledger.update(edit_id, record=record)
        with self.compensating([edit_id]):
            self._check_model_writable()
            rev = self.kg.store.commit(plan.diff, author, KG_TAG.format(id=edit_id) + _short(text),
                                        expect_head=plan.base_revision)
            fault("kg")
            record["journal"] = {"stage": "model", "head": head, "kg_revision": rev.id if rev else None}
            self.ledger.update(edit_id, kg_revision=rev.id if rev else None, record=record)
            model = self._model_edit(f"e{edit_id}", plan.model_facts, method, probe=probe)
        fault("model")
        record.pop("journal", None)
        if model is not None:
            record["model_edit"] = {k: v for k, v in model.items() if k != "answers"}
        self.ledger.update(edit_id, status="applied", record=record)
        fault("applied")
        return model

    def _check_model_writable(self) -> None:
        if self.has_model():
            self.model.check_writable()

    @contextmanager
    def compensating(self, edit_ids: Sequence[int]) -> Iterator[None]:
        """Run a step of the edits ``edit_ids`` (pending, journaled); on any error undo them as crash
        recovery would — the KG revisions reverted, the model edits discarded, the rows ``failed``
        with the error — and raise a :class:`OneEditError` saying so."""
        try:
            yield
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise  # KeyboardInterrupt, SystemExit: the journal undoes it on the next start
            self.abort(edit_ids, exc)
            ids = ", ".join(f"#{i}" for i in edit_ids)
            what = exc.message if isinstance(exc, OneEditError) else f"{type(exc).__name__}: {exc}"
            raise OneEditError(f"Edit {ids} failed ({what}); the KG and the model were put back as they were.",
                               hint=(exc.hint if isinstance(exc, OneEditError) and exc.hint else
                                     "Check the workspace (permissions, free disk space) and try again."),
                               details={"edits": list(edit_ids)}) from exc

    def abort(self, edit_ids: Sequence[int], exc: BaseException) -> None:
        """Undo the pending edits ``edit_ids`` after ``exc`` (recovery's path) and mark them failed."""
        for edit_id in edit_ids:
            entry = self.ledger.get(edit_id)
            if entry is not None and entry.status == "pending":
                rec = entry.record | {"attempts": 99, "error": {"error": f"{type(exc).__name__}: {exc}"}}
                self.ledger.update(edit_id, record=rec)
        self.recover()

    def _model_edit(self, model_id: str, facts: Sequence[Triple], method: str, *, probe: bool = True,
                    flush: bool = True) -> dict | None:
        """Write ``facts`` into the model (with queued repairs and the KG neighbours held in place,
        see :mod:`oneedit.repair`); ``flush``: write the repairs this edit queues right away, as
        their own batch (an import passes False: its next batch takes them)."""
        em = self.model
        if em is None:
            return None
        if not self.ws.config.consistency.retract:
            facts = [t for t in facts if not t.is_gap]
        if not facts:
            return {"id": None, "method": method, "facts": [], "note": "no fact the model answers changed"}
        probes = self._probe_prompts(facts) if probe else []
        before = self._answers(probes) if probe else []
        started = time.perf_counter()
        upkeep = self._write_model(model_id, list(facts), method)
        seconds = time.perf_counter() - started
        out = {"id": model_id, "method": method, "facts": [list(t.as_tuple()) for t in facts],
               "seconds": round(seconds, 3), **upkeep}
        if probe:
            after = self._answers(probes)
            out["answers"] = [{"prompt": p.text, "split": split, "expected": p.target.strip(), "before": b, "after": a,
                               "ok": a.strip().casefold().startswith(p.target.strip().casefold()),
                               "fact": list(t.as_tuple())}
                              for (split, p, t), b, a in zip(probes, before, after, strict=True)]
        if flush:
            self.flush_repairs(method)
        return out

    def audit(self, *, sample: int | None = None, seed: int = 0) -> dict:
        """The model audited against the KG (:mod:`oneedit.audit`); reused while neither the KG nor
        the model's edits changed."""
        from oneedit.audit import audit

        if self.model is None:
            raise OneEditError("This workspace has no model to audit.", hint="Train one with `oneedit model train`.")
        key = (self.kg.store.head(), tuple(self.model.edit_ids()), sample, seed)
        if self._audit is None or self._audit[0] != key:
            self._audit = (key, audit(self.ws, self.model, sample=sample, seed=seed, limit=20).to_dict())
        return self._audit[1]

    @property
    def repairs(self):
        if self._repairs is None:
            from oneedit.repair import Repairs

            cfg = self.ws.config.consistency
            self._repairs = Repairs(self.kg, cfg.repair, per_relation=cfg.probe_per_relation)
        return self._repairs

    def _write_model(self, model_id: str, facts: list[Triple], method: str) -> dict:
        """One model batch: ``facts`` plus queued repairs, KG neighbours as preserved prompts; the
        neighbours it knocks over are queued. Returns what it repaired and how many drifted."""
        from oneedit.models import fact_requests
        from oneedit.neighbours import keep_prompts

        em = self.model
        cfg = self.ws.config.consistency
        extra = self.repairs.take(facts) if cfg.repair else []
        write = facts + extra
        if not write:
            return {"repaired": [], "drifted": 0}
        keep = keep_prompts(self.kg, write, limit=cfg.keep_neighbours) if cfg.keep_neighbours and method == "memit" else ()
        near = self.repairs.neighbours(write) if cfg.repair else []
        ok_before = self.repairs.probe(em, near) if near else []
        em.edit(model_id, fact_requests(self.ws, write), method, keep=keep)
        drifted = []
        if near:
            ok_after = self.repairs.probe(em, near)
            drifted = [t for t, b, a in zip(near, ok_before, ok_after, strict=True) if b and not a]
            self.repairs.note(drifted, cause=model_id)
        if extra:
            self._record_repair(model_id, extra)
        return {"repaired": [list(t.as_tuple()) for t in extra], "drifted": len(drifted)}

    def flush_repairs(self, method: str = "memit") -> dict | None:
        """Write the queued repairs now, as a model batch of their own."""
        if self.model is None or self._repairs is None or not self._repairs.queue:
            return None
        n = len(self.ledger.repairs()) + 1  # never a name an undone repair batch had
        while f"r{n}" in self.model.edit_ids():
            n += 1
        out = self._write_model(f"r{n}", [], method)
        return {"id": f"r{n}", **out} if out["repaired"] else None

    def _record_repair(self, model_id: str, facts: list[Triple]) -> int:
        causes = sorted({c for t in facts if (c := self.repairs.cause_of(t))})
        return self.ledger.add_repair(model_id, [list(t.as_tuple()) for t in facts], causes)

    def _probe_prompts(self, facts: Sequence[Triple]) -> list:
        from oneedit.knowledge import Labeller, verbalizer

        verb = verbalizer(self.kg.schema)
        label = Labeller(self.kg)
        out = []
        for t in facts:
            f = label.fact(t)
            for split in ("train", "heldout"):
                ps = verb.prompts(f, split)
                if ps:
                    out.append((split, ps[0], t))
        return out

    def _answers(self, probes) -> list[str]:
        if not probes:
            return []
        from editor.probe import continuations

        em = self.model
        return [a.strip() for a in continuations(em.model, em.codec, [p[1] for p in probes])]

    # -- review ----------------------------------------------------------------------------------
    def review_queue(self) -> list[dict]:
        return [e.to_dict() for e in self.ledger.list(status="needs_review", limit=None, ascending=True)]

    def approve(self, edit_id: int, *, user: str | None = None, method: str | None = None) -> Outcome:
        """A curator approves an edit waiting for review: it is re-planned against today's KG (which
        may have changed since) and applied if nothing now refuses it."""
        u = self.actor(user)
        require(u, "review")
        entry = self._entry(edit_id, "needs_review")
        started = time.perf_counter()
        plan = self.controller.reconsider(EditPlan.from_dict(entry.record["plan"]), u)
        record = entry.record | {"plan": plan.to_dict(), "reviewed_by": u.name}
        if plan.decision != "apply":
            record["review_note"] = "re-planned at approval and refused: " + "; ".join(plan.reasons)
            self.ledger.update(edit_id, status="rejected", record=record)
            return Outcome(edit_id, "rejected", plan, entry.text, seconds=time.perf_counter() - started,
                           author=entry.author)
        self._check_model_writable()  # the edit stays waiting for review if the model cannot take it
        self.ledger.update(edit_id, status="pending", record=record)
        model = self._apply(edit_id, entry.text, plan, entry.author, method or record.get("method", "memit"),
                            record=record)
        self.users.adjust_trust(entry.author, "accepted")
        return Outcome(edit_id, "applied", plan, entry.text, model, time.perf_counter() - started, entry.author)

    def reject(self, edit_id: int, *, user: str | None = None, reason: str = "") -> dict:
        u = self.actor(user)
        require(u, "review")
        entry = self._entry(edit_id, "needs_review")
        record = entry.record | {"reviewed_by": u.name, "review_note": reason or "rejected in review"}
        record["plan"] = record["plan"] | {"refused_by": "review", "reasons": [reason or f"rejected by {u.name}"]}
        self.ledger.update(edit_id, status="rejected", record=record)
        self.users.adjust_trust(entry.author, "rejected")
        return self.ledger.get(edit_id).to_dict()

    def _entry(self, edit_id: int, status: str | None = None):
        entry = self.ledger.get(edit_id)
        if entry is None:
            raise OneEditError(f"No edit #{edit_id} in the ledger.", hint="List edits with `oneedit history`.")
        if status and entry.status != status:
            raise EditStateError(f"Edit #{edit_id} is {entry.status}, not {status}.",
                               hint="See it with `oneedit history --json`.")
        return entry

    # -- rollback --------------------------------------------------------------------------------
    def dependents(self, edit_id: int) -> list[int]:
        """Applied edits after ``edit_id`` that build on it (directly or through one another):
        they change a fact on the same (subject, relation) or use an entity it created."""
        entry = self._entry(edit_id)
        touched, created = _touched(entry.record)
        out: list[int] = []
        for later in self.ledger.list(status="applied", after=edit_id, limit=None, ascending=True):
            t2, c2 = _touched(later.record)
            used = {s for s, _ in t2} | _objects(later.record)
            if touched & t2 or created & used:
                out.append(later.id)
                touched |= t2
                created |= c2
        return out

    def rollback(self, edit_id: int, *, user: str | None = None, cascade: bool = False) -> dict:
        """Undo an applied edit on both sides, with its derived facts. Later edits that depend on
        it make this refuse (listing them), unless ``cascade`` rolls them back first."""
        u = self.actor(user)
        entry = self._entry(edit_id)
        if entry.status != "applied":
            raise EditStateError(f"Edit #{edit_id} is {entry.status}; only applied edits can be rolled back.",
                                 hint="See `oneedit history`.", details={"edit": edit_id, "status": entry.status})
        require(u, "rollback", entry.author, what=f"Edit #{edit_id}")
        deps = self.dependents(edit_id)
        # a cascade reaches only what the caller may roll back; others' edits are counted, not named
        mine = [d for d in deps if may(u, "rollback", self.ledger.get(d).author)]
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
            from oneedit.core import PermissionDenied

            raise PermissionDenied(f"Rolling back edit #{edit_id} with --cascade would roll back {others} edit(s) "
                                   f"by other users; {u.name} ({u.role}) can roll back only their own.",
                                   hint="Ask a curator to roll it back.", details={"edit": edit_id, "others": others})
        done = []
        for d in reversed(deps):
            done.append(self._rollback_one(d, u.name))
        done.append(self._rollback_one(edit_id, u.name))
        return {"rolled_back": [r["edit"] for r in done], "details": done}

    def _rollback_one(self, edit_id: int, by: str) -> dict:
        entry = self._entry(edit_id, "applied")
        record = entry.record
        record["rollback_journal"] = {"stage": "kg", "by": by}
        self.ledger.update(edit_id, record=record)
        rev = self._revert_kg(edit_id, entry.kg_revision, by, entry.text)
        fault("rollback_kg")
        record["rollback_journal"] = {"stage": "model", "by": by, "kg_revision": rev}
        self.ledger.update(edit_id, record=record)
        model = self._undo_model(edit_id, record)
        fault("rollback_model")
        record.pop("rollback_journal", None)
        record["rollback"] = {"by": by, "kg_revision": rev, "model": model}
        self.ledger.update(edit_id, status="rolled_back", record=record)
        if by != entry.author:
            self.users.adjust_trust(entry.author, "rolled_back")
        return {"edit": edit_id, "kg_revision": rev, "model": model}

    def _revert_kg(self, edit_id: int, rev_id: int | None, by: str, text: str) -> int | None:
        if rev_id is None:
            return None
        tag = ROLLBACK_TAG.format(id=edit_id)
        done = [r for r in self.kg.store.log.list(limit=50, after=rev_id) if r.message.startswith(tag)]
        if done:  # a crash after the revert committed: nothing more to do
            return done[0].id
        diff, _skipped = self.kg.store.plan_revert(rev_id)
        rev = self.kg.store.commit(diff, by, tag + _short(text))
        return rev.id if rev else None

    def _undo_model(self, edit_id: int, record: dict) -> dict | None:
        info = record.get("model_edit") or {}
        model_id = info.get("id")
        if not model_id or not self.has_model():
            return None
        em = self.model
        if model_id not in em.edit_ids():
            from oneedit.models import folded_edits

            if model_id in folded_edits(self.ws, em.loaded.name):
                return self._rewrite_folded(edit_id, model_id, info)
            return {"id": model_id, "note": "already gone"}
        shared = [i for i in info.get("shared_with", []) if i != edit_id]
        # repairs of what this edit knocked over, written as batches of their own, go with it
        live = set(em.edit_ids())
        # (only batches of repairs alone: a later edit's batch that carried some keeps them)
        repairs = [r["model_edit"] for r in self.ledger.repairs(live=True)
                   if model_id in r["caused_by"] and r["model_edit"] in live and _repair_batch(r["model_edit"])]
        for rid in repairs:  # newest first
            em.undo(rid, recheck=False)
            self.ledger.repair_undone(rid)
        report = em.undo(model_id)
        out = {"id": model_id, "reapplied": report.get("reapplied", []), "repairs_undone": repairs}
        if shared:
            # a batch (import): the other edits of the batch keep their facts in the model
            keep = []
            for other in shared:
                e = self.ledger.get(other)
                if e is not None and e.status == "applied":
                    keep.append(other)
            facts = [Triple(*f) for other in keep for f in (self.ledger.get(other).record.get("model_edit") or {}).get("own_facts", [])]
            facts = [t for t in facts if self._holds_in_kg(t)]
            if facts:
                new_id = f"{model_id}-r{edit_id}"
                self._model_edit(new_id, facts, info.get("method", "memit"), probe=False)
                for other in keep:
                    e = self.ledger.get(other)
                    rec = e.record
                    rec["model_edit"] = rec["model_edit"] | {"id": new_id, "shared_with": keep}
                    self.ledger.update(other, record=rec)
                out["rewritten_as"] = new_id
        return out

    def _rewrite_folded(self, edit_id: int, model_id: str, info: dict) -> dict:
        """Roll back the model side of an edit that consolidation folded into the weights: write what
        the KG now holds for the edit's (subject, relation) slots (the gap where it holds nothing)
        as a new model edit. The next consolidation makes it exact (the model is rebuilt from the
        KG without the edit)."""
        from oneedit.knowledge import slot_facts

        slots = {(f[0], f[1]) for f in info.get("own_facts") or info.get("facts") or []}
        facts = [t for s, r in sorted(slots) for t in slot_facts(self.kg, s, r)]
        facts = [t for t in facts if not t.is_gap or self.ws.config.consistency.retract]
        out = {"id": model_id, "folded": True}
        if facts:
            new_id = f"{model_id}-r{edit_id}"
            self._model_edit(new_id, facts, info.get("method", "memit"), probe=False)
            out["rewritten_as"] = new_id
        return out

    def _holds_in_kg(self, t: Triple) -> bool:
        from oneedit.knowledge import holds

        return holds(self.kg, t)

    def rollback_to(self, rev: int, *, user: str | None = None) -> dict:
        """Return the KG to revision ``rev`` and the model to the matching state: every applied edit
        after it is rolled back (newest first), then any other KG change after it is reverted."""
        u = self.actor(user)
        require(u, "rollback_to")
        head = self.kg.store.head()
        if rev < 0 or rev > head:
            raise OneEditError(f"There is no revision r{rev}: revisions run from r0 to r{head}.",
                               hint="List them with `oneedit kg log`.")
        later = [e for e in self.ledger.list(status="applied", limit=None) if (e.kg_revision or 0) > rev]
        # (each edit's rollback also undoes the repair batches it caused, see _undo_model)
        done = [self._rollback_one(e.id, u.name) for e in sorted(later, key=lambda e: -e.id)]
        restored = self.kg.restore(rev, author=u.name)
        return {"to": rev, "rolled_back": [d["edit"] for d in done],
                "restored_revision": restored.id if restored else None, "head": self.kg.store.head()}

    # -- recovery --------------------------------------------------------------------------------
    def recover(self) -> list[dict]:
        """Undo edits a crash left in flight and finish interrupted rollbacks (run on open)."""
        out = []
        for entry in self.ledger.list(status="pending", limit=None):
            journal = entry.record.get("journal") or {}
            reverted = []
            tag = KG_TAG.format(id=entry.id)
            for r in self.kg.store.log.list(limit=200, after=int(journal.get("head") or 0)):
                if r.message.startswith(tag):
                    diff, _ = self.kg.store.plan_revert(r.id)
                    self.kg.store.commit(diff, entry.author, f"recovery: undo interrupted edit #{entry.id}")
                    reverted.append(r.id)
            discarded = None
            if self.has_model():
                model_id = journal.get("model_id") or f"e{entry.id}"
                # repair batches the edit set off (written right after it) go first, newest first
                for r in self.ledger.repairs(live=True):
                    if model_id in r["caused_by"] and _repair_batch(r["model_edit"]):
                        self.model.discard(r["model_edit"])
                        self.ledger.repair_undone(r["model_edit"])
                discarded = self.model.discard(model_id)
                for r in self.ledger.repairs(live=True):  # what it carried went with it
                    if r["model_edit"] == model_id:
                        self.ledger.repair_undone(model_id)
            record = entry.record
            record.pop("journal", None)
            failure = {"stage": journal.get("stage", "ledger"), "reverted_kg": reverted,
                       "model_discarded": discarded, "reason": "interrupted before it completed; undone on restart"}
            attempts = int(record.get("attempts", 0)) + 1
            if record.get("via") == "queue" and attempts < MAX_ATTEMPTS:
                # a request of the service's queue: undone, then queued again for the next start
                for key in ("plan", "taken_at"):
                    record.pop(key, None)
                record |= {"attempts": attempts, "interrupted": record.get("interrupted", []) + [failure]}
                self.ledger.update(entry.id, status="queued", record=record)
                out.append({"edit": entry.id, "undone": True, "requeued": True, **failure})
                continue
            record["failure"] = failure
            self.ledger.update(entry.id, status="failed", record=record)
            out.append({"edit": entry.id, "undone": True, **failure})
        for entry in self.ledger.list(status="applied", limit=None):
            rj = entry.record.get("rollback_journal")
            if rj:
                self._rollback_one(entry.id, rj.get("by", entry.author))
                out.append({"edit": entry.id, "rollback_finished": True})
        return out

    # -- questions -------------------------------------------------------------------------------
    def ask(self, text: str) -> list[dict]:
        """The KG's answer and the model's, side by side, for each question in ``text``."""
        return [self.answer(q) for q in self.questions(text)]

    def questions(self, text: str) -> list[EditIntent]:
        """The questions in ``text`` (an error when there are none)."""
        parsed = self.parse(text)
        queries = [i for i in parsed.intents if i.op == "query"]
        if not queries:
            raise InputError(f"{text!r} is not a question I can answer.",
                             hint='Ask e.g. "What is the capital of France?" or "Who is the CEO of Apple?".',
                             details={"parse": parsed.to_dict()})
        return queries

    def answer(self, q: EditIntent) -> dict:
        from oneedit.knowledge import Labeller, verbalizer
        from editor.verbalize import Fact

        label = Labeller(self.kg)
        schema = self.kg.schema
        spec = schema.relations.get(q.relation or "")
        out: dict = {"question": q.text, "relation": q.relation}
        if spec is None:
            return out | {"kg": [], "model": None, "agree": None, "note": "no relation recognised"}
        for role in ("subject", "object"):
            m = getattr(q, role)
            if m is not None and m.entity is None:
                out |= {"kg": [], "model": None, "agree": None,
                        "note": f"{m.text!r} is not in the KG" + (" (ambiguous)" if m.candidates else "")}
                return out
        s, o = q.subject.id if q.subject else None, q.object.id if q.object else None
        if s and o:  # yes/no
            holds = self._holds_in_kg(Triple(s, spec.id, o))
            out |= {"kind": "yes_no", "subject": label(s), "object": label(o), "kg": holds}
            prompt_rel, subj, expect = spec.id, s, label(o)
        elif s:
            kg_ids = ([d.triple.object for d in self.kg.derived(spec.id, subject=s)] if spec.composite
                      else self.kg.store.objects(s, spec.id))
            out |= {"kind": "value", "subject": label(s), "kg": [label(x) for x in sorted(kg_ids)]}
            prompt_rel, subj, expect = spec.id, s, None
        else:
            mirror = schema.mirror(spec.id)
            kg_ids = self.kg.store.subjects(spec.id, o)
            out |= {"kind": "value", "object": label(o), "kg": [label(x) for x in sorted(kg_ids)]}
            prompt_rel, subj, expect = mirror, o, None
        em = self.model if prompt_rel and schema.relations[prompt_rel].functional else None
        if em is None:
            out |= {"model": None, "agree": None}
            if prompt_rel and not schema.relations[prompt_rel].functional:
                out["note"] = f"the model learns one-answer relations only; {prompt_rel} has several"
            return out
        verb = verbalizer(schema)
        try:
            prompt = verb.prompt(Fact(label(subj), prompt_rel, "", subj, ""), "train")
        except KeyError:
            return out | {"model": None, "agree": None}
        said = self._answers([("train", prompt, None)])[0]
        out["model_prompt"] = prompt.text
        out["model"] = said
        norm = said.casefold()
        if out.get("kind") == "yes_no":
            out["model_says_yes"] = norm.startswith(expect.casefold())
            out["agree"] = out["model_says_yes"] == out["kg"]
        else:
            out["agree"] = any(norm.startswith(k.casefold()) for k in out["kg"]) if out["kg"] else False
        return out

    # -- history ---------------------------------------------------------------------------------
    def history(self, *, user: str | None = None, entity: str | None = None, status: str | None = None,
                limit: int | None = 50) -> list[dict]:
        if entity:
            entity = self.kg.resolve_entity(entity).id
        return [e.to_dict() for e in self.ledger.list(author=user, entity=entity, status=status, limit=limit)]

    def last_edit(self, user: str | None = None) -> int | None:
        got = self.ledger.list(author=user or self.user, status="applied", limit=1)
        return got[0].id if got else None

    # -- batch import ----------------------------------------------------------------------------
    def import_file(self, path: str | Path, fmt: str | None = None, *, user: str | None = None,
                    method: str | None = None, batch_size: int = 64,
                    progress: Callable[[int, int], None] | None = None, all_or_nothing: bool = False) -> dict:
        """Apply every request of a batch file. Each line is its own ledger edit and KG revision,
        checked in file order; the model is edited once per ``batch_size`` accepted lines (one MEMIT
        batch). Lines an earlier run of the same file (same content) applied are skipped.

        ``all_or_nothing``: every line is first read and planned against the KG as it is; if any
        cannot be read, is refused or fails, nothing is applied (:class:`ImportFormatError` lists
        them). Otherwise the summary's ``problems`` lists the lines that were not applied."""
        u = self.actor(user)
        require(u, "import")
        method = method or self.ws.config.policy.import_method
        path = Path(path)
        results = self.interpreter.parse_file(path, fmt, lenient=True)
        digest = _file_digest(path)
        if all_or_nothing:
            self._preflight(path, results, u)
        done_keys = self.ledger.keys("applied")
        summary = {"file": str(path), "lines": len(results), "applied": 0, "rejected": 0, "needs_review": 0,
                   "failed": 0, "unchanged": 0, "skipped": 0, "model_batches": 0, "repaired": 0, "drifted": 0,
                   "problems": []}
        batch: list[tuple[int, EditPlan, dict]] = []
        started = time.perf_counter()
        for n, res in enumerate(results, 1):
            line = res.source.line if res.source else n
            key = _request_key(digest, line, res.text)
            if key in done_keys:
                summary["skipped"] += 1
            else:
                self._import_line(res, key, u, method, batch, summary, line)
            if len(batch) >= batch_size:
                self._finish_batch(batch, method, summary, flush=False)  # the next batch takes the repairs
            if progress:
                progress(n, len(results))
        self._finish_batch(batch, method, summary)
        flushed = self.flush_repairs(method)
        if flushed:
            summary["repaired"] += len(flushed["repaired"])
        summary["seconds"] = round(time.perf_counter() - started, 2)
        return summary

    def _preflight(self, path: Path, results, u) -> None:
        """Read and plan every line against the KG as it is; raise listing those that would not apply."""
        from oneedit.core import ImportFormatError

        problems = []
        for n, res in enumerate(results, 1):
            line = res.source.line if res.source else n
            intents = [i for i in res.intents if i.op in EDIT_OPS]
            if not intents:
                problems.append(f"line {line}: {'; '.join(res.notes) or 'no edit in this line'}")
                continue
            try:
                plan = self.plan(intents, user=u, text=res.text)
            except OneEditError as exc:
                problems.append(f"line {line}: {exc.message}")
                continue
            if plan.decision == "reject":
                problems.append(f"line {line}: refused: {'; '.join(plan.reasons)}")
        if problems:
            raise ImportFormatError(f"{path.name}: {len(problems)} of {len(results)} line(s) would not apply, so "
                                    "nothing was applied (--all-or-nothing):\n  " + "\n  ".join(problems[:20])
                                    + ("\n  ..." if len(problems) > 20 else ""),
                                    hint="Fix those lines and import again.",
                                    details={"file": str(path), "problems": problems})

    def _import_line(self, res, key: str, u, method: str, batch: list, summary: dict, line: int) -> None:
        intents = [i for i in res.intents if i.op in EDIT_OPS]
        if not intents:
            summary["failed"] += 1
            summary["problems"].append({"line": line, "status": "failed",
                                        "reason": "; ".join(res.notes) or "no edit in this line"})
            return
        try:
            plan = self.plan(intents, user=u, text=res.text)
        except OneEditError as exc:
            summary["failed"] += 1
            summary["problems"].append({"line": line, "status": "failed", "reason": exc.message})
            return
        if plan.decision == "noop":
            summary["unchanged"] += 1
            return
        record = {"plan": plan.to_dict(), "method": method,
                  "source": {"file": str(res.source.file) if res.source else "", "line": line}}
        status = {"apply": "pending", "reject": "rejected", "needs_review": "needs_review"}[plan.decision]
        edit_id = self.ledger.create(u.name, res.text, record, status, request_key=key, entities=_entities(plan))
        if status != "pending":
            summary["rejected" if status == "rejected" else "needs_review"] += 1
            summary["problems"].append({"line": line, "edit": edit_id, "status": status,
                                        "reason": "; ".join(plan.reasons)})
            return
        self._stage(edit_id, res.text, plan, u.name, record, batch)

    def _finish_batch(self, batch: list, method: str, summary: dict, *, probe: bool = False,
                      flush: bool = True) -> None:
        if not batch:
            return
        ids = [b[0] for b in batch]
        model_id = f"b{ids[0]}"
        # the facts each line wants that still hold after the whole batch (a later line may undo one)
        own: dict[int, list[Triple]] = {}
        facts: dict[tuple[str, str], Triple] = {}
        for edit_id, plan, _ in batch:
            mine = [t for t in plan.model_facts if self._holds_in_kg(t)]
            own[edit_id] = mine
            for t in mine:
                facts[_fact_key(t)] = t
        with self.compensating(ids):
            model = self._model_edit(model_id, list(facts.values()), method, probe=probe, flush=flush) if facts else None
        if model is not None:
            summary["model_batches"] += 1
            summary["repaired"] = summary.get("repaired", 0) + len(model.get("repaired", []))
            summary["drifted"] = summary.get("drifted", 0) + model.get("drifted", 0)
        fault("model")
        records = {}
        for edit_id, _plan, record in batch:
            record.pop("journal", None)
            if model is not None:
                mine = {tuple(f) for f in (list(t.as_tuple()) for t in own[edit_id])}
                record["model_edit"] = {k: v for k, v in model.items() if k not in ("facts", "answers")} | {
                    "own_facts": [list(t.as_tuple()) for t in own[edit_id]], "shared_with": ids}
                if model.get("answers"):
                    record["model_edit"]["answers"] = [a for a in model["answers"] if tuple(a["fact"]) in mine]
            records[edit_id] = record
        self.ledger.update_many(ids, status="applied", records=records)
        summary["applied"] += len(ids)
        for edit_id, _, _ in batch:
            e = self.ledger.get(edit_id)
            self.users.adjust_trust(e.author, "accepted")
        batch.clear()

    # -- curation --------------------------------------------------------------------------------
    def protect(self, subject: str, relation: str, obj: str, *, user: str | None = None, reason: str = "",
                remove: bool = False) -> Triple:
        u = self.actor(user)
        require(u, "protect")
        t = Triple(self.kg.resolve_entity(subject).id, self.kg.resolve_relation(relation).id,
                   self.kg.resolve_entity(obj).id)
        if remove:
            self.protected.unprotect(t)
            return t
        if not self.kg.store.contains(t):
            raise OneEditError(f"{t} is not in the KG, so it cannot be protected.")
        self.protected.protect(t, u.name, reason)
        return t


# -- helpers -------------------------------------------------------------------------------------------
def _repair_batch(model_id: str) -> bool:
    """Whether ``model_id`` is a model batch of repairs alone (``r<n>``, see ``flush_repairs``)."""
    return model_id[:1] == "r" and model_id[1:].isdigit()


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _request_key(digest: str, line: int, text: str) -> str:
    """An import line's key: the file's content, the line and its text (not the file's name: two
    files of one name are two files, and a file edited since is another)."""
    return hashlib.sha256(f"{digest}\0{line}\0{' '.join(text.split())}".encode()).hexdigest()[:32]


def _entities(plan: EditPlan) -> set[str]:
    out = set()
    for t in (*plan.diff.added, *plan.diff.removed):
        out.add(t.subject)
        if not t.is_meta:
            out.add(t.object)
    return out


def _touched(record: dict) -> tuple[set[tuple[str, str]], set[str]]:
    plan = record.get("plan") or {}
    diff = plan.get("kg_diff") or {}
    keys = {(t["subject"], t["relation"]) for part in ("added", "removed") for t in diff.get(part, [])
            if t["relation"] not in ("type", "label", "alias", "description")}
    created = {e["id"] for e in plan.get("new_entities", [])}
    return keys, created


def _objects(record: dict) -> set[str]:
    diff = (record.get("plan") or {}).get("kg_diff") or {}
    return {t["object"] for part in ("added", "removed") for t in diff.get(part, [])}
