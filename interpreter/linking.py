"""Entity linking: a name in a request -> a KG entity, the candidates to choose from, or a new one.

Candidates come from the KG's own name index (``match_mention`` of the store: exact id, label and
alias, then rapidfuzz typo and partial-name matches). This module decides what to do with them:

- the best candidate of a type the relation allows, at or above ``link`` and clearly ahead of
  the next (``margin``), is the entity;
- otherwise, candidates at or above ``candidate`` are returned for the person to choose from
  (two cities called Portland; "Einstien" at 0.75): nothing is guessed below the threshold;
- otherwise a name that looks like a name becomes a proposed new entity, typed from the
  relation's domain or range ("Jane Doe is the CEO of Apple" -> a new Person).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from oneedit.core import Entity, EntityMatch, Mention
from interpreter import lexicon as lx
from interpreter.relations import RelationLexicon
from interpreter.text import fold, stem


class EntityIndex(Protocol):
    """What linking needs from a KG: ``KGStore.match_mention`` has this shape."""

    def match_mention(self, text: str, *, limit: int = 10, types=None,
                      cutoff: float = 0.6) -> list[EntityMatch]: ...


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Thresholds of entity linking (scores are in [0, 1])."""

    link: float = 0.8          # a candidate at or above this (and clear of the next) is linked
    margin: float = 0.05       # ... when the runner-up scores at least this much less
    candidate: float = 0.7     # below ``link``, candidates at or above this are offered
    max_candidates: int = 5
    max_new_words: int = 6     # a new entity's name is at most this many words

    def __post_init__(self) -> None:
        if not 0 < self.candidate <= self.link <= 1:
            raise ValueError("LinkConfig needs 0 < candidate <= link <= 1")
        if not 0 <= self.margin < 1:
            raise ValueError("LinkConfig.margin must be in [0, 1)")


@dataclass(frozen=True, slots=True)
class Link:
    """How a slot of a frame was filled: one mention (or several: "Tim Cook and Jony Ive")."""

    mentions: tuple[Mention, ...]
    score: float                    # for ranking competing readings of a sentence
    note: str = ""                  # e.g. a type that does not fit the relation


_NAME_CHARS = re.compile(r"^[\w\s.,'&()\-/+]+$")
_SPLIT = re.compile(r"\s*(?:,\s*and\s+|,\s*|\s+and\s+|\s*&\s*)\s*", re.I)
_PREPOSITIONS = {"of", "by", "in", "to", "for", "at", "from", "as", "with", "on", "into"}
#: Lower-case words inside proper names ("Bank of America", "Leonardo da Vinci").
_PARTICLES = {"of", "the", "and", "de", "da", "di", "del", "della", "des", "du", "la", "le", "von",
              "van", "der", "den", "bin", "bint", "al", "el", "y", "e", "&", "for", "on", "upon", "en",
              "zu", "ter", "ten", "st", "-"}
_FUNCTION_WORDS = _PREPOSITIONS | {"the", "a", "an", "and", "or", "its", "his", "her", "their", "is",
                                   "was", "are", "were", "to", "that", "this", "these", "those"}

#: Ranking weights of a slot that is not a confident link (relative to a link's confidence).
AMBIGUOUS_WEIGHT, NEW_SCORE, MISMATCH_WEIGHT, PRONOUN_SCORE = 0.6, 0.45, 0.3, 0.9
#: A variant with words stripped ("the city of Lyon" -> "Lyon") ranks just below the full name.
STRIPPED_WEIGHT = 0.98


class EntityLinker:
    def __init__(self, index: EntityIndex, lexicon: RelationLexicon, config: LinkConfig | None = None):
        self.index = index
        self.lexicon = lexicon
        self.config = config or LinkConfig()
        self._type_stems = lexicon.type_words

    # -- one name --------------------------------------------------------------------------
    def link(self, text: str, types: Sequence[str], *, quoted: bool = False,
             antecedents: Sequence[Entity] = (), cache: dict | None = None,
             cased: bool = False) -> Link | None:
        """Resolve the name ``text`` for a slot that allows ``types``; ``None``: not a name.

        ``cased``: the request mixes upper and lower case, so a new name must be capitalised.
        """
        key = (text, tuple(types), quoted, tuple(e.id for e in antecedents), cased)
        if cache is not None and key in cache:
            return cache[key]
        out = self._link(text, types, quoted, antecedents, cased)
        if out is None and not quoted:
            out = self._coordinated(text, types, cased)
        if cache is not None:
            cache[key] = out
        return out

    def _link(self, text: str, types: Sequence[str], quoted: bool,
              antecedents: Sequence[Entity], cased: bool = False) -> Link | None:
        text = text.strip().strip("\"'").strip()
        if not text:
            return None
        words = fold(text).split()
        if not quoted and len(words) == 1 and words[0] in lx.PRONOUNS:
            for e in antecedents:
                if e.type in types:
                    return Link((Mention(text, e, PRONOUN_SCORE),), PRONOUN_SCORE)
            return None
        if not quoted and all(w.strip(".,") in _FUNCTION_WORDS for w in words):
            return None  # "the", "of the": no name at all
        variants = [(text, 1.0)] if quoted else self._variants(text)
        best: dict[str, EntityMatch] = {}
        for k, (variant, weight) in enumerate(variants):
            if k and weight < 1.0 and any(m.score >= 0.97 for m in best.values()):
                break  # the words as written name an entity exactly: "University of Pisa", not "Pisa"
            for m in self.index.match_mention(variant, limit=10, cutoff=0.6):
                score = m.score * weight
                if m.entity.id not in best or score > best[m.entity.id].score:
                    best[m.entity.id] = EntityMatch(m.entity, score, m.matched, m.how)
        ranked = sorted(best.values(), key=lambda m: (-m.score, m.entity.id))
        typed = [m for m in ranked if m.entity.type in types]
        cfg = self.config
        exact = next((m for m in ranked if m.how == "id" and m.entity.id == text), None)
        if exact is not None:  # an entity's id, as written: ids are unique, labels are not
            if exact.entity.type in types:
                return Link((Mention(text, exact.entity, 1.0),), 1.0)
            note = f"{exact.entity.label!r} is a {exact.entity.type}, not a {' or '.join(types)}"
            return Link((Mention(text, exact.entity, 1.0),), MISMATCH_WEIGHT, note)
        if typed and typed[0].score >= cfg.link and (
                len(typed) == 1 or typed[0].score - typed[1].score >= cfg.margin):
            top = typed[0]
            return Link((Mention(text, top.entity, round(top.score, 4)),), top.score)
        new_type = self.new_type(text, types)
        if typed and typed[0].score >= cfg.candidate:
            floor = max(cfg.candidate, typed[0].score - 0.15)
            cands = tuple(m for m in typed if m.score >= floor)[:cfg.max_candidates]
            return Link((Mention(text, None, round(cands[0].score, 4), cands, new_type),),
                        AMBIGUOUS_WEIGHT * cands[0].score)
        # A strong match of a type the relation does not allow: keep it (the controller will
        # refuse the fact with the reason) rather than invent a new entity of the same name.
        if ranked and ranked[0].score >= max(cfg.link, 0.9) and (
                len(ranked) == 1 or ranked[0].score - ranked[1].score >= cfg.margin):
            top = ranked[0]
            want = " or ".join(types)
            note = f"{top.entity.label!r} is a {top.entity.type}, not a {want}"
            return Link((Mention(text, top.entity, round(top.score, 4)),), MISMATCH_WEIGHT * top.score, note)
        if quoted or self.looks_like_name(text, cased=cased):
            near = tuple(m for m in typed if m.score >= 0.6)[:cfg.max_candidates]
            best_near = near[0].score if near else 0.0
            conf = round(max(0.5, 1 - best_near / 2), 4)
            return Link((Mention(_display(text, quoted), None, conf, (), new_type),), NEW_SCORE)
        return None

    def _coordinated(self, text: str, types: Sequence[str], cased: bool = False) -> Link | None:
        parts = [p for p in _SPLIT.split(text) if p.strip()]
        if len(parts) < 2 or len(parts) > 8:
            return None
        links = [self._link(p, types, False, (), cased) for p in parts]
        if any(lk is None or len(lk.mentions) != 1 for lk in links):
            return None
        mentions = tuple(lk.mentions[0] for lk in links)  # type: ignore[union-attr]
        if all(m.status == "new" for m in mentions):
            return None  # "Ben and Jerry": more likely one unknown name than two
        score = sum(lk.score for lk in links) / len(links)  # type: ignore[union-attr]
        return Link(mentions, score, "; ".join(lk.note for lk in links if lk.note))  # type: ignore[union-attr]

    # -- helpers ---------------------------------------------------------------------------
    def _variants(self, text: str) -> list[tuple[str, float]]:
        """The name, and the name without leading articles or a type word ("the city of Lyon")."""
        out = [(text, 1.0)]
        words = text.split()
        i = 0
        while i < len(words) - 1 and fold(words[i]) in ("the", "a", "an"):
            i += 1
        if i:
            out.append((" ".join(words[i:]), 1.0))  # articles are not part of names
        rest = words[i:]
        if len(rest) >= 2 and stem(fold(rest[0]).strip(".,")) in self._type_stems:
            j = 2 if len(rest) >= 3 and fold(rest[1]) == "of" else 1
            out.append((" ".join(rest[j:]), STRIPPED_WEIGHT))
        if len(rest) >= 2 and stem(fold(rest[-1]).strip(".,")) in self._type_stems:
            out.append((" ".join(rest[:-1]), STRIPPED_WEIGHT))
        return out

    def looks_like_name(self, text: str, *, cased: bool = False) -> bool:
        """Could ``text`` be the name of a new entity (rather than a piece of a sentence)?

        ``cased``: the text around it mixes case, so every word of a name but particles
        ("of", "de", "von") must have a capital letter or digit ("Jane Doe", not "Einstein lived").
        """
        if not _NAME_CHARS.match(text) or sum(c.isalnum() for c in text) < 2:
            return False
        if cased:
            for w in text.split():
                if fold(w).strip(".,") not in _PARTICLES and not any(c.isupper() or c.isdigit() for c in w):
                    return False
        words = [w.strip(".,") for w in fold(text).split()]
        words = [w for w in words if w]
        if not words or len(words) > self.config.max_new_words:
            return False
        if any(w in lx.CLAUSE_WORDS or w == "and" for w in words):
            return False
        if words[0] in _PREPOSITIONS or words[-1] in _PREPOSITIONS | {"the", "a", "an"}:
            return False
        content = [w for w in words if w not in ("the", "a", "an")]
        if not content or all(stem(w) in self._type_stems for w in content):
            return False
        if len(words) == 1 and words[0] in lx.PRONOUNS:
            return False
        # "Apple's headquarters", "the head of state of …": a relation phrase, not a name.
        stems = [stem(w) for w in words]
        joined = " " + " ".join(stems) + " "
        for p in self.lexicon.phrases:
            if (len(p.stems) > 1 or p.stems[0] not in _PREPOSITIONS) and f" {p.key} " in joined:
                return False
        return True

    def new_type(self, text: str, types: Sequence[str]) -> str | None:
        """The type a new entity named ``text`` gets: the only allowed type, or the allowed type
        its name mentions ("Acme University" -> University), or the first allowed type."""
        if not types:
            return None
        if len(types) == 1:
            return types[0]
        for w in fold(text).split():
            t = self._type_stems.get(stem(w.strip(".,")))
            if t in types:
                return t
        return types[0]


def _display(text: str, quoted: bool) -> str:
    """A new entity's name: as written, without a leading article unless it was quoted."""
    words = text.split()
    if not quoted and len(words) > 1 and fold(words[0]) in ("the", "a", "an"):
        words = words[1:]
    return " ".join(words)
