"""Name lookup: case-insensitive exact and fuzzy matching of entity labels and aliases.

Fuzzy scoring uses rapidfuzz (a maintained C++ implementation of Levenshtein-family scorers):
``WRatio`` tolerates small typos, token reordering and partial names, and scores 100k names in
milliseconds, which a hand-written matcher would not.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from oneedit.core import Entity, EntityMatch

_SEP = re.compile(r"[^a-z0-9]+")

#: Scores for the kinds of match: an exact alias is slightly less certain than an exact label.
LABEL_SCORE, ALIAS_SCORE, FUZZY_SCALE = 1.0, 0.97, 0.95
#: ``match_mention``: a whole name with typos scores ``FUZZY_SCALE`` less ``EDIT_COST`` per edit; a
#: part of a name ("Einstein" for "Albert Einstein") at most ``PARTIAL_SCALE``; words shorter than
#: ``MIN_FUZZY_TOKEN`` never match fuzzily (every 3-letter code is one edit from many others);
#: whole strings match on spelling alone only from ``SPELLING_CUTOFF`` (fuzz.ratio).
PARTIAL_SCALE, EDIT_COST, MIN_FUZZY_TOKEN, SPELLING_CUTOFF = 0.9, 0.05, 4, 90.0
#: A name part shared by more names than this ("university") says too little to propose them all.
MAX_PARTIAL_NAMES = 40


def normalize(text: str) -> str:
    """Casefold, strip diacritics and punctuation, collapse whitespace ("U.S." -> "us")."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    folded = folded.lower().replace(".", "").replace("'", "")
    return _SEP.sub(" ", folded).strip()


def closest(name: str, choices: Iterable[str], limit: int = 3, cutoff: float = 60) -> list[str]:
    """The choices nearest to ``name`` (for "did you mean" hints)."""
    choices = list(choices)
    hits = process.extract(name, choices, scorer=fuzz.WRatio, limit=limit, score_cutoff=cutoff,
                           processor=normalize)
    return [c for c, _score, _i in hits]


class NameIndex:
    """Entities by normalised label and alias, for exact and fuzzy lookup."""

    def __init__(self, entities: Iterable[Entity] = ()):
        self._entities: dict[str, Entity] = {}
        self._by_name: dict[str, set[tuple[str, str]]] = defaultdict(set)  # name -> {(id, how)}
        self._names: list[str] | None = None
        self._tokens: dict[str, set[str]] | None = None  # name token -> normalised names holding it
        self._token_list: list[str] | None = None
        self._close: dict[str, list[tuple[str, int]]] = {}
        for e in entities:
            self.put(e)

    def __len__(self) -> int:
        return len(self._entities)

    def get(self, entity_id: str) -> Entity | None:
        return self._entities.get(entity_id)

    def put(self, entity: Entity) -> None:
        self.drop(entity.id)
        self._entities[entity.id] = entity
        self._by_name[normalize(entity.label)].add((entity.id, "label"))
        for alias in entity.aliases:
            self._by_name[normalize(alias)].add((entity.id, "alias"))
        self._names = self._tokens = self._token_list = None

    def drop(self, entity_id: str) -> None:
        old = self._entities.pop(entity_id, None)
        if old is None:
            return
        for name in old.names():
            key = normalize(name)
            bucket = self._by_name.get(key)
            if bucket:
                bucket.difference_update({(entity_id, "label"), (entity_id, "alias")})
                if not bucket:
                    del self._by_name[key]
        self._names = self._tokens = self._token_list = None

    def entities(self) -> Iterable[Entity]:
        return self._entities.values()

    def find(self, text: str, *, limit: int = 5, type: str | None = None,
             fuzzy: bool = True, cutoff: float = 0.6) -> list[EntityMatch]:
        """Candidates for ``text``, best first. Exact id/label/alias matches come before fuzzy ones."""
        results: dict[str, EntityMatch] = {}

        def offer(m: EntityMatch) -> None:
            if type and m.entity.type != type:
                return
            cur = results.get(m.entity.id)
            if cur is None or m.score > cur.score:
                results[m.entity.id] = m

        raw = text.strip()
        if raw in self._entities:
            offer(EntityMatch(self._entities[raw], 1.0, raw, "id"))
        key = normalize(raw)
        for eid, how in self._by_name.get(key, ()):
            offer(EntityMatch(self._entities[eid], LABEL_SCORE if how == "label" else ALIAS_SCORE,
                              raw, how))  # type: ignore[arg-type]
        if fuzzy and key and len(results) < limit:
            if self._names is None:
                self._names = list(self._by_name)
            for name, score, _i in process.extract(key, self._names, scorer=fuzz.WRatio,
                                                   limit=limit * 3, score_cutoff=cutoff * 100 / FUZZY_SCALE):
                s = min(score / 100 * FUZZY_SCALE, FUZZY_SCALE)
                for eid, _how in self._by_name[name]:
                    offer(EntityMatch(self._entities[eid], s, name, "fuzzy"))
        ranked = sorted(results.values(), key=lambda m: (-m.score, m.entity.id))
        return ranked[:limit]

    # -- mentions in running text ----------------------------------------------------------
    def match_mention(self, text: str, *, limit: int = 10, types: Iterable[str] | None = None,
                      cutoff: float = 0.6) -> list[EntityMatch]:
        """Candidates for a name as a person writes it in a sentence, best first.

        Unlike ``find`` (WRatio, for "did you mean" hints), a mention's score says how much of it
        a name explains, word by word: exact id/label/alias; every word of a name with typos
        (an edit or two per word, by optimal string alignment: "Frnace", "Mircosoft"); or a part
        of a name whose every word matches ("Einstein", "Curie"). A word that matches nothing
        rules a name out, so "Acme University" is not "Yale University" and "Lyon is the" is not
        "Lyon". ``types`` keeps only entities of those types.
        """
        allowed = set(types) if types is not None else None
        results: dict[str, EntityMatch] = {}

        def offer(eid: str, score: float, matched: str, how: str) -> None:
            e = self._entities[eid]
            if allowed is not None and e.type not in allowed:
                return
            cur = results.get(eid)
            if cur is None or score > cur.score:
                results[eid] = EntityMatch(e, round(score, 4), matched, how)  # type: ignore[arg-type]

        raw = text.strip()
        if raw in self._entities:
            offer(raw, 1.0, raw, "id")
        key = normalize(raw)
        for eid, how in self._by_name.get(key, ()):
            offer(eid, LABEL_SCORE if how == "label" else ALIAS_SCORE, raw, how)
        if key:
            self._build_tokens()
            assert self._names is not None
            # Spacing and punctuation differences ("mountainview"): the whole string, strictly.
            for name, score, _i in process.extract(key, self._names, scorer=fuzz.ratio,
                                                   score_cutoff=SPELLING_CUTOFF, limit=limit):
                if name != key:
                    for eid, _how in self._by_name[name]:
                        offer(eid, score / 100 * FUZZY_SCALE, name, "fuzzy")
            for name, score in self._token_matches(key.split()):
                if score >= cutoff:
                    for eid, _how in self._by_name[name]:
                        offer(eid, score, name, "fuzzy")
        ranked = sorted(results.values(), key=lambda m: (-m.score, m.entity.id))
        return ranked[:limit]

    def _build_tokens(self) -> None:
        if self._names is None:
            self._names = list(self._by_name)
        if self._tokens is None:
            tokens: dict[str, set[str]] = defaultdict(set)
            for name in self._names:
                for tok in name.split():
                    tokens[tok].add(name)
            self._tokens, self._token_list = dict(tokens), list(tokens)
            self._close = {}  # word -> its near tokens, for this token list

    def _token_matches(self, words: list[str]) -> list[tuple[str, float]]:
        """Names holding every word (each exactly or within its typo budget), scored."""
        assert self._tokens is not None and self._token_list is not None
        per_word: list[dict[str, int]] = []  # for each word: {name: fewest edits}
        for w in words:
            close = self._close.get(w)
            if close is None:
                budget = typo_budget(w)
                close = [(w, 0)] if w in self._tokens else []
                if budget:
                    close += [(t, int(d)) for t, d, _i in process.extract(
                        w, self._token_list, scorer=OSA.distance, score_cutoff=budget, limit=20) if t != w]
                if len(self._close) < 100_000:
                    self._close[w] = close
            edits: dict[str, int] = {}
            for tok, d in close:
                for name in self._tokens.get(tok, ()):
                    edits[name] = min(edits.get(name, d), d)
            if not edits:
                return []
            per_word.append(edits)
        names = set.intersection(*(set(d) for d in per_word))
        if len(names) > MAX_PARTIAL_NAMES:
            return []
        out = []
        for name in names:
            n_tokens = len(name.split())
            edits = sum(d[name] for d in per_word)
            if n_tokens <= len(words):
                out.append((name, FUZZY_SCALE - EDIT_COST * max(edits, 1)))  # the whole name
            else:
                coverage = len(words) / n_tokens
                out.append((name, PARTIAL_SCALE * (0.9 + 0.1 * coverage) - EDIT_COST * edits))
        return out


def typo_budget(word: str) -> int:
    """Edits a word of this length may carry and still count as the same word."""
    return 0 if len(word) < MIN_FUZZY_TOKEN else (1 if len(word) < 10 else 2)
