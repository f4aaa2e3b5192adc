"""Intents from named parts: ``(op, subject, relation, object)`` as an LLM, a CSV row or an RDF
statement gives them -> an ``EditIntent`` with linked entities, in the schema's stored direction.

The rule parser ends in the same place (``orient``), so every source of intents agrees on
direction, on ``replace`` meaning a functional relation, and on notes for derived relations.
"""

from __future__ import annotations

from oneedit.core import EditIntent, Mention, SourceLine, UnknownRelationError
from interpreter.linking import EntityLinker
from interpreter.relations import RelationLexicon, words_of
from interpreter.text import fold, stem

#: Spellings of operations in structured inputs.
OP_NAMES = {"assert": "assert", "add": "assert", "+": "assert", "insert": "assert",
            "replace": "replace", "set": "replace", "update": "replace", "=": "replace",
            "retract": "retract", "remove": "retract", "delete": "retract", "-": "retract",
            "query": "query", "ask": "query", "?": "query",
            "undo": "undo", "revert": "undo", "explain": "explain", "why": "explain"}


def orient(lexicon: RelationLexicon, op: str, relation: str | None, subject, obj,
           notes: list[str]) -> tuple[str, str | None, object, object]:
    """Express a reading in the schema's stored direction and settle its operation.

    ``subject``/``obj`` are whatever stands for each side (mentions, tuples of mentions, None).
    """
    if relation is None:
        return op, relation, subject, obj
    relation, flipped = lexicon.canonical(relation)
    if flipped:
        subject, obj = obj, subject
    if op == "replace" and not lexicon.functional(relation):
        op = "assert"
        notes.append(f"{relation} can hold several values: read as an addition")
    if op in ("assert", "replace", "retract") and lexicon.composite(relation):
        rule = " -> ".join(lexicon.relations[relation].rule)
        notes.append(f"{relation} is derived ({rule}); the KG changes its base facts")
    return op, relation, subject, obj


def _article(word: str) -> str:
    w = word.lower()
    if w.startswith(("uni", "use", "usu", "eu", "one")):
        return "a"  # "a University": the sound, not the letter
    return "an" if w[:1] in "aeiou" else "a"


def type_clash(lexicon: RelationLexicon, intent: EditIntent) -> str | None:
    """Why a read intent cannot hold, when a linked entity is of a type the relation does not
    take ("'Tim Cook' is a Person, but a capital must be a City"); ``None`` when it fits.

    New names (no entity yet) and intents without a relation never clash: the new entity takes
    the type the relation asks for."""
    rel = intent.relation
    if rel is None or rel not in lexicon.relations:
        return None
    label = lexicon.relations[rel].label or rel
    for mention, allowed, role in ((intent.subject, lexicon.domain(rel), "said of"),
                                   (intent.object, lexicon.range(rel), "must be")):
        e = getattr(mention, "entity", None)
        if e is None or not allowed or e.type in allowed:
            continue
        want = " or ".join(f"{_article(t)} {t}" for t in allowed)
        if role == "said of":
            return f"{e.label!r} is {_article(e.type)} {e.type}, but {label!r} is said of {want}"
        return f"{e.label!r} is {_article(e.type)} {e.type}, but {label!r} must name {want}"
    return None


class Resolver:
    """Names -> linked intents, for structured sources (LLM output, CSV/JSONL rows, RDF)."""

    def __init__(self, lexicon: RelationLexicon, linker: EntityLinker):
        self.lexicon = lexicon
        self.linker = linker

    def relation(self, name: str) -> str:
        """A relation by id, label or phrase (any case, inflection or underscores)."""
        rels = self.lexicon.relations
        key = fold(name).strip().replace(" ", "_").replace("-", "_")
        if key in rels:
            return key
        stems = tuple(stem(w) for w in words_of(name.replace("_", " ")))
        hits = {p.relation for p in self.lexicon.phrases if p.stems == stems}
        if len(hits) == 1:
            return hits.pop()
        near = self.lexicon.closest(name)
        shown = ", ".join(self.lexicon.describe(r) for r in near)
        if len(hits) > 1:
            raise UnknownRelationError(f"{name!r} could name {', '.join(sorted(hits))}.",
                                       hint="Use the relation id.",
                                       details={"relation": name, "closest": sorted(hits)})
        raise UnknownRelationError(f"No relation for {name!r}; closest: {shown}.",
                                   hint="Use one of the schema's relation ids "
                                        "(`oneedit kg stats --json` lists them).",
                                   details={"relation": name, "closest": near})

    def mention(self, name: str, types, notes: list[str] | None = None) -> Mention:
        """Link a name given on its own (not inside a sentence); a type clash goes to ``notes``."""
        link = self.linker.link(name, tuple(types), quoted=True)
        if link is None or len(link.mentions) != 1:
            raise ValueError(f"{name!r} is not a usable entity name")
        if link.note and notes is not None:
            notes.append(link.note)
        return link.mentions[0]

    def intent(self, op: str, subject: str | None, relation: str | None, obj: str | None, *,
               edit: int | None = None, count: int = 1, about: str | None = None,
               text: str = "", source: SourceLine | None = None,
               notes: tuple[str, ...] = ()) -> EditIntent:
        """One intent from names. Raises ``UnknownRelationError`` for a relation the schema
        lacks and ``ValueError`` for parts that do not fit together."""
        op = OP_NAMES.get(fold(op).strip(), "") if op else "assert"
        if not op:
            raise ValueError("unknown operation (use assert, replace, retract, query, undo or explain)")
        if op == "undo":
            return EditIntent(op="undo", edit=edit, count=max(1, count), text=text, source=source)
        rel = self.relation(relation) if relation else None
        if rel is None and op in ("assert", "replace", "retract"):
            raise ValueError(f"{op} needs a relation")
        if op in ("assert", "replace") and not (subject and obj):
            raise ValueError(f"{op} needs a subject and an object")
        if op == "retract" and not subject:
            raise ValueError("retract needs a subject")
        if op == "explain" and not (subject or edit is not None):
            raise ValueError("explain needs a subject or an edit id")
        if op == "query" and not (subject or obj):
            raise ValueError("query needs a subject or an object")
        all_types = tuple(self.lexicon.schema.types)
        s_types = self.lexicon.domain(rel) if rel else all_types
        o_types = self.lexicon.range(rel) if rel else all_types
        out_notes = list(notes)
        s = self.mention(subject, s_types, out_notes) if subject else None
        o = self.mention(obj, o_types, out_notes) if obj else None
        if op == "explain" and about is None:
            about = "edit" if edit is not None and s is None else ("fact" if rel and o else "history")
        op, rel, s, o = orient(self.lexicon, op, rel, s, o, out_notes)
        conf = min((m.confidence for m in (s, o) if m is not None), default=1.0)  # type: ignore[union-attr]
        return EditIntent(op=op, subject=s, relation=rel, object=o, confidence=round(conf, 4),  # type: ignore[arg-type]
                          edit=edit, count=max(1, count), about=about if op == "explain" else None,  # type: ignore[arg-type]
                          text=text, source=source, notes=tuple(out_notes))
