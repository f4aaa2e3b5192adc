"""What the ledger keeps about one edit, as typed, immutable records.

A ledger row (:class:`oneedit.ledger.LedgerEntry`) carries an :class:`EditRecord`: the request
(text or structured facts, how it arrived), the Controller's :class:`~oneedit.core.plan.EditPlan`,
the :class:`ModelEditRef` naming what was written into the model, the rollback, and — while the edit
is in flight — its :class:`Journal` (or :class:`RollbackJournal`), the stage of the transaction it
reached, which crash recovery reads (:mod:`oneedit.transaction`).

Records are frozen: a change is a new record (``record.but(journal=...)``), written back with
``Ledger.update``. ``to_dict`` gives the JSON the ledger stores and the API shows; ``from_dict``
reads it back and is the one place that schema is parsed (keys it does not know are kept in
``extra``, so a newer ledger loses nothing read by an older release).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from oneedit.core.plan import EditPlan
from oneedit.core.types import Triple

Fact = tuple[str, str, str]
Stage = Literal["kg", "model"]


def _facts(rows: Iterable | None) -> tuple[Fact, ...] | None:
    return None if rows is None else tuple((str(a), str(b), str(c)) for a, b, c in rows)


def _listed(facts: tuple[Fact, ...] | None) -> list | None:
    return None if facts is None else [list(f) for f in facts]


def _drop_none(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Journal:
    """An edit in flight: the transaction's stage and what recovery needs to undo it.

    ``head``: the KG head before the edit (its revision, if any, comes after); ``model_id``: the
    model edit it goes into (a batch's id; ``e<id>`` when alone); ``kg_revision``: its revision
    once committed."""

    stage: Stage
    head: int
    model_id: str | None = None
    kg_revision: int | None = None

    def to_dict(self) -> dict:
        return _drop_none({"stage": self.stage, "head": self.head, "model_id": self.model_id,
                           "kg_revision": self.kg_revision})

    @classmethod
    def from_dict(cls, d: Mapping) -> Journal:
        return cls(d.get("stage", "kg"), int(d.get("head") or 0), d.get("model_id"), d.get("kg_revision"))


@dataclass(frozen=True, slots=True)
class RollbackJournal:
    """A rollback in flight: its stage, who asked, and the revert's revision once committed."""

    stage: Stage
    by: str
    kg_revision: int | None = None

    def to_dict(self) -> dict:
        return _drop_none({"stage": self.stage, "by": self.by, "kg_revision": self.kg_revision})

    @classmethod
    def from_dict(cls, d: Mapping) -> RollbackJournal:
        return cls(d.get("stage", "kg"), str(d.get("by") or ""), d.get("kg_revision"))


@dataclass(frozen=True, slots=True)
class ModelEditRef:
    """The model edit an edit was written into and what it did.

    ``id`` is the edit's id in the model (``e<N>``, a batch's ``b<N>``, a rewrite ``…-r<N>``;
    None when no fact the model answers changed). A batch lists the edits that share it and this
    edit's ``own_facts``; a lone edit lists its ``facts``."""

    id: str | None
    method: str = "memit"
    facts: tuple[Fact, ...] | None = None
    own_facts: tuple[Fact, ...] | None = None
    shared_with: tuple[int, ...] | None = None
    seconds: float | None = None
    repaired: tuple[Fact, ...] = ()
    drifted: int = 0
    note: str | None = None
    answers: tuple[dict, ...] = ()

    def but(self, **changes) -> ModelEditRef:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    @property
    def written(self) -> tuple[Fact, ...]:
        """The facts this edit itself wrote into the model."""
        return self.own_facts if self.own_facts is not None else (self.facts or ())

    def to_dict(self) -> dict:
        out = _drop_none({"id": self.id, "method": self.method, "facts": _listed(self.facts),
                          "own_facts": _listed(self.own_facts),
                          "shared_with": list(self.shared_with) if self.shared_with is not None else None,
                          "seconds": self.seconds, "note": self.note})
        out |= {"id": self.id, "repaired": _listed(self.repaired), "drifted": self.drifted}
        if self.answers:
            out["answers"] = [dict(a) for a in self.answers]
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> ModelEditRef:
        return cls(d.get("id"), d.get("method", "memit"), _facts(d.get("facts")), _facts(d.get("own_facts")),
                   tuple(int(i) for i in d["shared_with"]) if d.get("shared_with") is not None else None,
                   d.get("seconds"), _facts(d.get("repaired") or ()), int(d.get("drifted") or 0), d.get("note"),
                   tuple(dict(a) for a in d.get("answers") or ()))


_KNOWN = ("plan", "method", "request", "via", "queued_at", "taken_at", "source", "journal", "rollback_journal",
          "model_edit", "rollback", "failure", "error", "attempts", "interrupted", "reviewed_by", "review_note")


@dataclass(frozen=True, slots=True)
class EditRecord:
    """Everything the ledger keeps about one edit beyond its row's columns."""

    plan: EditPlan | None = None
    method: str = "memit"
    request: dict | None = None          # a queued request as sent: {"text"} or {"triples"}
    via: str | None = None               # "queue": accepted by the service, planned by its worker
    queued_at: float | None = None
    taken_at: float | None = None
    source: dict | None = None           # an import line: {"file", "line"}
    journal: Journal | None = None
    rollback_journal: RollbackJournal | None = None
    model_edit: ModelEditRef | None = None
    rollback: dict | None = None         # {"by", "kg_revision", "model"} once rolled back
    failure: dict | None = None          # why an interrupted edit was undone
    error: dict | None = None            # why a queued request could not be planned
    attempts: int = 0
    interrupted: tuple[dict, ...] = ()
    reviewed_by: str | None = None
    review_note: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this release does not know

    def but(self, **changes) -> EditRecord:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    @property
    def in_flight(self) -> bool:
        return self.journal is not None or self.rollback_journal is not None

    def to_dict(self) -> dict:
        out = dict(self.extra)
        out |= _drop_none({
            "plan": self.plan.to_dict() if self.plan else None, "method": self.method, "request": self.request,
            "via": self.via, "queued_at": self.queued_at, "taken_at": self.taken_at, "source": self.source,
            "journal": self.journal.to_dict() if self.journal else None,
            "rollback_journal": self.rollback_journal.to_dict() if self.rollback_journal else None,
            "model_edit": self.model_edit.to_dict() if self.model_edit else None, "rollback": self.rollback,
            "failure": self.failure, "error": self.error, "attempts": self.attempts or None,
            "interrupted": [dict(i) for i in self.interrupted] or None, "reviewed_by": self.reviewed_by,
            "review_note": self.review_note})
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> EditRecord:
        def opt(key, parse):
            v = d.get(key)
            return None if v is None else parse(v)

        return cls(plan=opt("plan", EditPlan.from_dict), method=d.get("method") or "memit",
                   request=opt("request", dict), via=d.get("via"), queued_at=d.get("queued_at"),
                   taken_at=d.get("taken_at"), source=opt("source", dict), journal=opt("journal", Journal.from_dict),
                   rollback_journal=opt("rollback_journal", RollbackJournal.from_dict),
                   model_edit=opt("model_edit", ModelEditRef.from_dict), rollback=opt("rollback", dict),
                   failure=opt("failure", dict), error=opt("error", dict), attempts=int(d.get("attempts") or 0),
                   interrupted=tuple(dict(i) for i in d.get("interrupted") or ()),
                   reviewed_by=d.get("reviewed_by"), review_note=d.get("review_note"),
                   extra={k: v for k, v in d.items() if k not in _KNOWN})


def model_facts(ref: ModelEditRef | None) -> list[Triple]:
    return [Triple(*f) for f in ref.written] if ref else []
