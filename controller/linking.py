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

from oneedit.core import Entity, EntityMatch

_SEP = re.compile(r"[^a-z0-9]+")

#: Scores for the kinds of match: an exact alias is slightly less certain than an exact label.
LABEL_SCORE, ALIAS_SCORE, FUZZY_SCALE = 1.0, 0.97, 0.95


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
        self._names = None

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
        self._names = None

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
