"""Follow-ups in a conversation: a turn that leans on the one before.

After "What is the capital of Peru?" a person writes "Change it to Cusco" (the same subject and
relation, a new value) or "and Chile's?" / "what about Chile?" (the same relation, another
subject). Neither names what it is about, so neither reads on its own; :func:`follow_up` reads them
against the conversation's :class:`Focus` — the subject and relation of the last question or edit
— and gives the intent, which the chat shows before anything is applied.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from oneedit.core import EditIntent, Entity, Mention

_CHANGE = re.compile(
    r"^(?:(?:no|nope|actually|ok|okay|well|hmm)\W+)*(?:please\s+)?(?:change|set|update|make|switch|correct)\s+"
    r"(?:it|that|this|the answer|that value)\s+(?:to|into|as)?\s*(?P<o>.+?)\s*(?:,?\s*please)?[.!]*$", re.I)
_ASK = re.compile(r"^(?:and|what about|how about|and what about)\s+(?P<s>.+?)(?:\s*'s|’s)?\s*[?.!]*$", re.I)


@dataclass(frozen=True, slots=True)
class Focus:
    """What the conversation is about: the subject and relation of the last question or edit."""

    subject: Entity
    relation: str


def focus_of(intent: EditIntent) -> Focus | None:
    """The focus a question or an edit leaves (None when it names no single subject)."""
    if intent.relation and intent.subject is not None and intent.subject.entity is not None:
        return Focus(intent.subject.entity, intent.relation)
    return None


def follow_up(text: str, focus: Focus | None, kg) -> EditIntent | None:
    """The intent of a follow-up turn, or None when ``text`` is not one (read it on its own)."""
    if focus is None:
        return None
    spec = kg.schema.relations.get(focus.relation)
    if spec is None:
        return None
    text = " ".join(text.split())
    m = _CHANGE.match(text)
    if m:
        obj = _name(kg, m["o"], spec.range)
        if obj is None:
            return None
        return EditIntent("replace", Mention(focus.subject.label, entity=focus.subject, confidence=1.0),
                          focus.relation, obj, text=text)
    m = _ASK.match(text)
    if m:
        subject = _name(kg, m["s"], spec.domain, new=False)
        if subject is None:
            return None
        return EditIntent("query", subject, focus.relation, None, text=text)
    return None


def _name(kg, name: str, types, *, new: bool = True) -> Mention | None:
    """The entity ``name`` names (of one of ``types``), or a new one of the first type."""
    name = name.strip().strip("\"'“”")
    if not name:
        return None
    hits = [m for m in kg.store.find_entities(name, limit=5, fuzzy=False) if m.entity.type in types]
    if len(hits) == 1 or (hits and hits[0].how == "id"):
        return Mention(name, entity=hits[0].entity, confidence=1.0)
    if hits:
        return Mention(name, candidates=tuple(hits))
    return Mention(name, new_type=types[0]) if new else None
