"""Edit intents: what a request asks for, before the controller decides anything.

The interpreter makes them (from text, an LLM's structured output or a batch file); the
controller consumes them. Entities are *mentions*: the name as written, the KG entity it resolved
to with a confidence, or the candidates a person must choose between, or a proposed new entity
typed from the relation's domain or range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from oneedit.core.types import Entity, EntityMatch, Triple

IntentOp = Literal["assert", "replace", "retract", "query", "undo", "explain"]
INTENT_OPS: tuple[str, ...] = ("assert", "replace", "retract", "query", "undo", "explain")

#: What an ``explain`` intent asks about: why the KG holds a fact, why the model says something,
#: the history of an entity or fact, or one edit of the ledger.
ExplainAbout = Literal["fact", "model", "history", "edit"]

MentionStatus = Literal["linked", "ambiguous", "new"]


@dataclass(frozen=True, slots=True)
class SourceLine:
    """Where a request came from in a batch file (1-based line)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Mention:
    """A name in a request and what it resolves to.

    - ``linked``: ``entity`` is set and ``confidence`` passed the linking threshold.
    - ``ambiguous``: no entity; ``candidates`` (best first) for the person to choose from, because
      several entities fit equally well or the best fit is below the threshold. ``new_type`` is
      the type a new entity would get, should none of them be meant.
    - ``new``: nothing in the KG fits; ``new_type`` is the proposed type of a new entity.
    """

    text: str
    entity: Entity | None = None
    confidence: float = 0.0
    candidates: tuple[EntityMatch, ...] = ()
    new_type: str | None = None

    @property
    def status(self) -> MentionStatus:
        if self.entity is not None:
            return "linked"
        return "ambiguous" if self.candidates else "new"

    @property
    def id(self) -> str | None:
        return self.entity.id if self.entity is not None else None

    def to_dict(self) -> dict:
        if self.entity is not None:
            return {"id": self.entity.id, "label": self.entity.label}
        if self.candidates:
            return {"ambiguous": self.text, "type": self.new_type}
        return {"new": self.text, "type": self.new_type}


def candidate_dict(m: EntityMatch) -> dict:
    out = {"id": m.entity.id, "label": m.entity.label, "type": m.entity.type, "score": round(m.score, 3)}
    if m.entity.description:
        out["description"] = m.entity.description
    return out


@dataclass(frozen=True, slots=True)
class EditIntent:
    """One thing a request asks for.

    ``assert``/``replace``/``retract``: a fact (``subject``, ``relation``, ``object``); ``retract``
    without an object retracts every value. ``replace`` sets the one value of a functional
    relation. ``query``: ``None`` marks the unknown (object, or subject); with all three it is a
    yes/no question; with a subject only, "what do we know about it". ``undo``: ``edit`` (an id of
    the ledger) or the latest ``count`` edits. ``explain``: ``about`` says what, with the fact or
    entity in the triple fields or an ``edit`` id.
    """

    op: IntentOp
    subject: Mention | None = None
    relation: str | None = None
    object: Mention | None = None
    confidence: float = 1.0
    edit: int | None = None
    count: int = 1
    about: ExplainAbout | None = None
    text: str = ""
    source: SourceLine | None = None
    notes: tuple[str, ...] = ()

    def mentions(self) -> dict[str, Mention]:
        return {role: m for role, m in (("subject", self.subject), ("object", self.object)) if m is not None}

    @property
    def resolved(self) -> bool:
        """Every named entity is linked to the KG (nothing to choose, nothing new)."""
        return all(m.status == "linked" for m in self.mentions().values())

    @property
    def needs_choice(self) -> bool:
        return any(m.status == "ambiguous" for m in self.mentions().values())

    @property
    def triple(self) -> Triple | None:
        """The fact as ids, when subject, relation and object are all linked."""
        if self.relation and self.subject and self.object and self.subject.entity and self.object.entity:
            return Triple(self.subject.entity.id, self.relation, self.object.entity.id)
        return None

    def key(self) -> tuple:
        """What makes two intents the same request: op, triple (ids or names), edit, count."""
        def part(m: Mention | None):
            if m is None:
                return None
            return m.entity.id if m.entity is not None else ("?", m.text.casefold())

        return (self.op, part(self.subject), self.relation, part(self.object), self.edit,
                self.count if self.op == "undo" else 1, self.about)

    def to_dict(self) -> dict:
        out: dict = {"op": self.op}
        if self.op == "undo":
            out |= {"edit": self.edit, "count": self.count}
        else:
            out |= {"subject": self.subject.to_dict() if self.subject else None,
                    "relation": self.relation,
                    "object": self.object.to_dict() if self.object else None}
            if self.op == "explain":
                out |= {"about": self.about, "edit": self.edit}
        out["confidence"] = round(self.confidence, 3)
        out["candidates"] = {role: [candidate_dict(c) for c in m.candidates]
                             for role, m in self.mentions().items() if m.candidates}
        if self.text:
            out["text"] = self.text
        if self.source is not None:
            out["source"] = {"file": self.source.file, "line": self.source.line}
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What the interpreter made of one request: its intents, in order, and notes about any part
    it could not express (an unknown relation, an unreadable clause)."""

    text: str
    intents: tuple[EditIntent, ...]
    notes: tuple[str, ...] = ()
    parser: Literal["rules", "rules+encoder", "llm", "context"] = "rules"
    source: SourceLine | None = None

    def to_dict(self) -> dict:
        out: dict = {"text": self.text, "parser": self.parser,
                     "intents": [i.to_dict() for i in self.intents], "notes": list(self.notes)}
        if self.source is not None:
            out["source"] = {"file": self.source.file, "line": self.source.line}
        return out
