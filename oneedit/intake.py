"""Requests in: text or structured facts turned into edit intents, before the Controller sees them.

Text goes through the Interpreter; structured facts (``{"op", "subject", "relation", "object"}``,
from the API, the LangChain tools or ``--triples``) are resolved here. Every name is checked for
characters that may not be stored (:mod:`oneedit.core.safe_text`) on arrival.
"""

from __future__ import annotations

from collections.abc import Sequence

from oneedit.core import EditIntent, Mention, OneEditError
from oneedit.core.safe_text import check_text

EDIT_OPS = ("assert", "replace", "retract")


class Intake:
    def __init__(self, system):
        self.sys = system

    def edit_intents(self, text: str) -> list[EditIntent]:
        """The edit intents of ``text``; an error that shows how it was read when it asks for none."""
        parsed = self.sys.interpreter.parse(text)
        intents = [i for i in parsed.intents if i.op in EDIT_OPS]
        if not intents:
            ops = ", ".join(sorted({i.op for i in parsed.intents})) or "nothing"
            raise OneEditError(f"{text!r} asks for no change to the KG (it reads as: {ops}).",
                               hint='State a fact, e.g. "The capital of France is Lyon"; ask questions '
                                    "with `oneedit ask`.", details={"parse": parsed.to_dict()})
        return intents

    def from_triples(self, triples: Sequence[dict]) -> list[EditIntent]:
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
            rel = self.sys.kg.resolve_relation(str(t["relation"])).id
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

        kg = self.sys.kg
        name = " ".join(name.split())
        try:
            e = kg.resolve_entity(name)
            return Mention(e.label, entity=e, confidence=1.0)
        except UnknownEntityError as exc:
            ids = (exc.details or {}).get("candidates")
            if ids:
                options = [kg.store.entity(i) for i in ids]
                raise AmbiguousRequest(
                    f"{name!r} could be several entities: "
                    + ", ".join(f"{e.label} ({e.id})" for e in options if e) + ".",
                    hint="Send its id instead.",
                    details={"mention": name, "role": role, "candidates": ids,
                             "options": [{"id": e.id, "label": e.label, "description": e.description,
                                          "type": e.type} for e in options if e]}) from None
            if op == "retract":
                raise
        if new_type is not None and new_type not in kg.schema.types:
            raise OneEditError(f"Unknown type {new_type!r} for the new entity {name!r}.",
                               hint="Types: " + ", ".join(sorted(kg.schema.types)) + ".")
        return Mention(name, new_type=new_type)
