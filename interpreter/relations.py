"""What the schema says about how relations are written: phrases, templates, types, directions.

Everything here is read from the schema object (``controller.schema.Schema`` or anything shaped
like it), never written down in code: each relation's id, label and ``phrases``, its train and
held-out templates, its domain and range, its inverse. The interpreter understands a new relation
as soon as the schema gains one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from interpreter.text import fold, stem, tokenize


@dataclass(frozen=True, slots=True)
class Phrase:
    """One way of naming a relation, as stems ("works for" -> ("work", "for"))."""

    stems: tuple[str, ...]
    relation: str
    text: str
    op: str | None = None  # an event verb's operation ("quit": retract); None for a plain phrase

    @property
    def key(self) -> str:
        return " ".join(self.stems)


def words_of(text: str) -> list[str]:
    """The folded words of a phrase or template (placeholders and punctuation dropped)."""
    return [t.norm for t in tokenize(text).items if not t.is_punct and not t.norm.startswith("<")]


class RelationLexicon:
    """The schema's relations as the parser sees them."""

    def __init__(self, schema):
        self.schema = schema
        self.relations = schema.relations
        phrases: dict[tuple[str, tuple[str, ...]], Phrase] = {}
        for spec in self.relations.values():
            names = [*spec.phrases, spec.label, spec.id.replace("_", " ")]
            # the words run together, as people type them ("primeminister", "headoffice")
            names += ["".join(words_of(n)) for n in names if len(words_of(n)) > 1]
            for text in names:
                words = words_of(text)
                if not words:
                    continue
                stems = tuple(stem(w) for w in words)
                phrases.setdefault((spec.id, stems), Phrase(stems, spec.id, text))
            for op, verbs in spec.events:
                for text in verbs:
                    words = words_of(text)
                    if words:
                        stems = tuple(stem(w) for w in words)
                        phrases.setdefault((spec.id, stems), Phrase(stems, spec.id, text, op))
        self.phrases: list[Phrase] = sorted(phrases.values(), key=lambda p: (-len(p.stems), p.key))
        self.by_first_stem: dict[str, list[Phrase]] = {}
        for p in self.phrases:
            self.by_first_stem.setdefault(p.stems[0], []).append(p)
        self._primary = self._primaries()
        self.type_words = self._type_words()

    # -- directions ------------------------------------------------------------------------
    def _primaries(self) -> dict[str, str]:
        """For each relation of an inverse pair, the pair's stored direction.

        The schema lists the direction its data files write first (``capital`` before
        ``capital_of``, ``parent`` before ``child``); intents are always expressed in it, so
        "Tim Cook is the CEO of Apple" and "Apple's CEO is Tim Cook" give the same intent.
        """
        order = list(self.relations)
        out = {}
        for rid, spec in self.relations.items():
            inv = spec.inverse
            if inv and inv in self.relations and order.index(inv) < order.index(rid):
                out[rid] = inv
        return out

    def canonical(self, relation: str) -> tuple[str, bool]:
        """``(relation to use, whether subject and object swap)``."""
        inv = self._primary.get(relation)
        return (inv, True) if inv else (relation, False)

    def functional(self, relation: str) -> bool:
        return self.relations[relation].cardinality == "one"

    def composite(self, relation: str) -> bool:
        return bool(self.relations[relation].rule)

    def domain(self, relation: str) -> tuple[str, ...]:
        return tuple(self.relations[relation].domain)

    def range(self, relation: str) -> tuple[str, ...]:
        return tuple(self.relations[relation].range)

    # -- words -----------------------------------------------------------------------------
    def _type_words(self) -> dict[str, str]:
        """Stem of a type's label or alias -> type ("compani" -> Organization)."""
        out: dict[str, str] = {}
        aliases = getattr(self.schema, "type_aliases", {}) or {}
        for type_id, label in self.schema.types.items():
            for word in (label, type_id, *aliases.get(type_id, ())):
                words = words_of(word)
                if len(words) == 1:
                    out.setdefault(stem(words[0]), type_id)
        return out

    def templates(self) -> Iterable[tuple[str, str]]:
        """``(relation, template)`` for every train and held-out template."""
        for spec in self.relations.values():
            for t in spec.templates.all():
                yield spec.id, t

    def vocabulary(self) -> set[str]:
        """Every word of every phrase, label and template (what a typo is corrected towards)."""
        words: set[str] = set()
        for spec in self.relations.values():
            verbs = [v for _op, vs in spec.events for v in vs]
            for text in (*spec.phrases, spec.label, *verbs):
                words.update(words_of(text))
        for _rid, t in self.templates():
            words.update(words_of(t.replace("Q:", " ").replace("A:", " ")))
        aliases = getattr(self.schema, "type_aliases", {}) or {}
        for type_id, label in self.schema.types.items():
            words.update(words_of(label))
            for a in aliases.get(type_id, ()):
                words.update(words_of(a))
        return {w for w in words if w.isalpha()}

    def closest(self, words: str, limit: int = 3) -> list[str]:
        """Relations whose phrases are nearest to ``words`` ("favourite colour" -> ...)."""
        choices = {fold(p.text): p.relation for p in self.phrases if len(p.text) > 2}
        hits = process.extract(fold(words), list(choices), scorer=fuzz.ratio, limit=limit * 4)
        out: list[str] = []
        for text, _score, _i in hits:
            rid = choices[text]
            if rid not in out:
                out.append(rid)
            if len(out) == limit:
                break
        return out

    def describe(self, relation: str) -> str:
        spec = self.relations[relation]
        return f"{spec.id} ({spec.label})" if fold(spec.label) != spec.id.replace("_", " ") else spec.id
