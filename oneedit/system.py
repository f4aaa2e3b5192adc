"""The OneEdit facade: the composition root the CLI, the chat, the service and the tools use.

``OneEdit.open(workspace)`` gives the workspace's KG, ledger and users, composes the stages —
the Interpreter, the Controller (:mod:`controller.stage`), the transaction (:mod:`oneedit.transaction`)
and the model side (:mod:`oneedit.model_sync`) — and the jobs built on them: the service's queue
(:mod:`oneedit.edit_queue`), review (:mod:`oneedit.review`), rollback (:mod:`oneedit.rollback`),
question answering (:mod:`oneedit.questions`) and import (:mod:`oneedit.importer`). Opening
finishes or undoes whatever a crash left in flight. The facade decides nothing itself: it checks
who asks, hands the request to the Controller, and carries the decision out through the
transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from controller.users import require
from oneedit.core import EditIntent, InputError, Triple
from oneedit.core.edit_record import EditRecord
from oneedit.core.faults import fault
from oneedit.core.plan import EditPlan
from oneedit.core.safe_text import check_text
from oneedit.edit_queue import EditQueue
from oneedit.importer import Importer
from oneedit.intake import EDIT_OPS, Intake
from oneedit.model_sync import ModelSync
from oneedit.questions import Questions
from oneedit.review import Review
from oneedit.rollback import DependentEdits, EditStateError, Rollbacks
from oneedit.transaction import STATUS_OF, Outcome, Transaction, plan_entities

__all__ = ["EDIT_OPS", "DependentEdits", "EditStateError", "OneEdit", "Outcome"]


class OneEdit:
    def __init__(self, ws, *, user: str | None = None, model: str | None = None, device: str | None = None,
                 load_model: bool = True, progress: Callable[[str], None] | None = None):
        from controller.users import ProtectedFacts, RateLimit, TrustPolicy, UserStore

        self.ws, self.kg, self.ledger = ws, ws.kg, ws.ledger
        pol = ws.config.policy
        self.trust = TrustPolicy.from_dict(pol.trust)
        self.rate_limit = RateLimit.from_dict(pol.rate_limit)
        self.users = UserStore(ws.root / "ledger.sqlite", self.trust, owner=ws.config.user, token_days=pol.token_days)
        self.protected = ProtectedFacts(ws.root / "ledger.sqlite")
        self.users.ensure(ws.config.user, "admin")
        self.user = user or ws.config.user
        self._model_name, self._device, self._load_model = model, device, load_model
        self._em = self._interp = self._safety = self._controller = None
        self._step = progress or (lambda msg: None)
        self.sync = ModelSync(self)
        self.transaction = Transaction(self)
        self.intake = Intake(self)
        self.queue = EditQueue(self)
        self.review = Review(self)
        self.rollbacks = Rollbacks(self)
        self.qa = Questions(self)
        self.importer = Importer(self)

    @classmethod
    def open(cls, root: str | Path | None = None, *, write: bool = True, **kw) -> OneEdit:
        """The facade over a workspace, as its writer (or, ``write=False``, to read beside one)."""
        from oneedit.workspace import Workspace

        ws = Workspace.open(root, write=write)
        try:
            sys_ = cls(ws, **kw)
        except BaseException:
            ws.close()
            raise
        try:
            sys_.recover_if_writer()
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

    @property
    def safety(self):
        if self._safety is None:
            from controller.stage import safety_from_policy

            self._safety = safety_from_policy(self.ws.config.policy)
        return self._safety

    def has_model(self) -> bool:
        from oneedit.models import DEFAULT, has_default

        name = self._model_name or self.ws.config.model.name
        return self._load_model and (name != DEFAULT or has_default(self.ws))

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
        self.sync.reset()

    def actor(self, name: str | None = None):
        return self.users.get(name or self.user)

    # -- requests --------------------------------------------------------------------------------
    def parse(self, text: str, focus: tuple[str, str] | None = None):
        """What the interpreter makes of ``text``. With ``focus`` (the entity id and relation of
        the conversation's last question or edit) a follow-up that leans on it ("Change it to
        Cusco", "and Chile's?") is read against it first (``parser: context``)."""
        if focus is not None:
            from interpreter.context import Focus, follow_up
            from oneedit.core import ParseResult

            subject, relation = focus
            entity = self.kg.store.entity(subject)
            if entity is None or relation not in self.kg.schema.relations:
                raise InputError(f"The focus ({subject}, {relation}) names no entity or relation of the KG.",
                                 hint="Send the entity id and relation id of the last turn's intent, or no focus.")
            followed = follow_up(text, Focus(entity, relation), self.kg)
            if followed is not None:
                note = f"read as a follow-up to ({entity.label}, {relation})"
                return ParseResult(text=text, intents=(followed,), notes=(note,), parser="context")
        return self.interpreter.parse(text)

    def plan(self, intents: Sequence[EditIntent], *, user=None, text: str = "") -> EditPlan:
        """The Controller's decided plan for ``intents`` (see :meth:`controller.stage.Controller.decide`)."""
        user = user if user is not None and not isinstance(user, str) else self.actor(user)
        return self.controller.decide(intents, user, text)

    def submit(self, text: str = "", *, intents: Sequence[EditIntent] | None = None, user: str | None = None,
               method: str | None = None, confirm: Callable[[EditPlan], bool] | None = None,
               dry_run: bool = False, request_key: str | None = None, probe: bool = True) -> Outcome:
        """Interpret, check and (unless refused, declined or a dry run) apply one request."""
        started = time.perf_counter()
        u = self.actor(user)
        require(u, "edit")
        check_text(text, "request", newlines=True)
        intents = self.intake.edit_intents(text) if intents is None else intents
        self.users.check_rate(u.name, u.role, self.ledger.recent_count(u.name), self.rate_limit)
        plan = self.controller.decide(intents, u, text)

        def outcome(edit_id, status, model=None) -> Outcome:
            return Outcome(edit_id, status, plan, text, model, time.perf_counter() - started, u.name)

        if dry_run or plan.decision == "noop":
            return outcome(None, "noop" if plan.decision == "noop" else "planned")
        if plan.decision == "apply" and confirm is not None and not confirm(plan):
            return outcome(None, "cancelled")
        status = STATUS_OF[plan.decision]
        if status == "pending":
            self.sync.check_writable()  # before anything is written: no row, no revision
        record = EditRecord(plan=plan, method=method or self.ws.config.policy.method)
        edit_id = self.ledger.create(u.name, text, record, status, request_key=request_key,
                                     entities=plan_entities(plan))
        fault("ledger")
        if status != "pending":
            if status == "rejected":
                self.users.adjust_trust(u.name, "rejected")
            return outcome(edit_id, status)
        model = self.transaction.apply(edit_id, text, plan, u.name, record.method, probe=probe, record=record)
        self.users.adjust_trust(u.name, "accepted")
        return outcome(edit_id, "applied", model)

    # -- the jobs (each in its module) -----------------------------------------------------------
    def recover(self) -> list[dict]:
        """Undo edits a crash left in flight and finish interrupted rollbacks (run on open)."""
        return self.transaction.recover() + self.rollbacks.finish()

    def recover_if_writer(self) -> list[dict]:
        """Recover as the workspace's writer; a reader recovers only while no process writes (it
        never undoes a live writer's edits in flight)."""
        from oneedit.core.wslock import WorkspaceBusy

        if self.ws.writer:
            return self.recover()
        if not self.ws.ledger.interrupted() or not self.ws.try_write():
            return []
        try:
            return self.recover()
        except WorkspaceBusy:  # another machine holds the database's lease: it recovers its own
            return []
        finally:
            self.ws.release_write()

    def approve(self, edit_id: int, *, user: str | None = None, method: str | None = None) -> Outcome:
        return self.review.approve(edit_id, self.actor(user), method=method)

    def reject(self, edit_id: int, *, user: str | None = None, reason: str = "") -> dict:
        return self.review.reject(edit_id, self.actor(user), reason=reason)

    def rollback(self, edit_id: int, *, user: str | None = None, cascade: bool = False) -> dict:
        return self.rollbacks.rollback(edit_id, self.actor(user), cascade=cascade)

    def rollback_to(self, rev: int, *, user: str | None = None) -> dict:
        return self.rollbacks.rollback_to(rev, self.actor(user))

    def ask(self, text: str) -> list[dict]:
        """The KG's answer and the model's, side by side, for each question in ``text``."""
        return [self.qa.answer(q) for q in self.qa.parse(text)]

    def import_file(self, path: str | Path, fmt: str | None = None, *, user: str | None = None, **kw) -> dict:
        return self.importer.run(path, fmt, self.actor(user), **kw)

    def history(self, *, user: str | None = None, entity: str | None = None, status: str | None = None,
                limit: int | None = 50) -> list[dict]:
        if entity:
            entity = self.kg.resolve_entity(entity).id
        return [e.to_dict() for e in self.ledger.list(author=user, entity=entity, status=status, limit=limit)]

    def last_edit(self, user: str | None = None) -> int | None:
        got = self.ledger.list(author=user or self.user, status="applied", limit=1)
        return got[0].id if got else None

    def protect(self, subject: str, relation: str, obj: str, *, user: str | None = None, reason: str = "",
                remove: bool = False) -> Triple:
        return self.review.protect(subject, relation, obj, self.actor(user), reason=reason, remove=remove)
