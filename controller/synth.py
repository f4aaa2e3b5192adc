"""A schema-conformant synthetic world of any size, for scale tests and benchmarks.

Names are made of fixed-length syllables from a global counter, so every label (and id) is
unique; every fact respects domain/range, cardinality and inverse/symmetric mirrors, so the
result passes ``oneedit kg validate``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from oneedit.core import Entity, Triple, slugify
from controller.schema import Schema

_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]  # 70 two-letter syllables
_FIRST = ["Ada", "Ben", "Cleo", "Dara", "Emil", "Fay", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena",
          "Milo", "Nia", "Otto", "Pia", "Rui", "Sana", "Tomas", "Uma", "Vera", "Wim", "Yara", "Zeno"]

#: Per country: cities, people, organisations, universities.
CITIES, PEOPLE, ORGS, UNIS = 8, 20, 3, 2


class _Names:
    def __init__(self) -> None:
        self.i = 0

    def __call__(self) -> str:
        self.i += 1
        n, parts = self.i + 70 * 70, []  # at least three syllables
        while n:
            n, d = divmod(n, 70)
            parts.append(_SYLLABLES[d])
        return "".join(reversed(parts)).capitalize()


def synth_world(schema: Schema, n_triples: int, *, seed: int = 0) -> list[Triple]:
    """About ``n_triples`` triples (whole country units, so slightly more), deterministic per seed."""
    rng = random.Random(seed)
    name = _Names()
    out: list[Triple] = []
    emit = out.append
    rel = schema.relations

    def entity(etype: str, label: str) -> str:
        e = Entity(slugify(label), etype, label)
        out.extend(e.triples())
        return e.id

    def fact(s: str, r: str, o: str) -> None:
        emit(Triple(s, r, o))
        mirror = schema.mirror(r)
        if mirror:
            emit(Triple(o, mirror, s))

    pool: Callable[[str, int], list[str]] = lambda t, k: [entity(t, name()) for _ in range(k)]
    continents = pool("Continent", 7)
    currencies, languages = pool("Currency", 50), pool("Language", 50)
    occupations, industries = pool("Occupation", 30), pool("Industry", 30)
    assert rel["capital"].functional and rel["spouse"].symmetric  # the schema this generator targets

    while len(out) < n_triples:
        country = entity("Country", name())
        fact(country, "continent", rng.choice(continents))
        fact(country, "currency", rng.choice(currencies))
        for lang in rng.sample(languages, rng.randint(1, 2)):
            fact(country, "official_language", lang)
        cities = [entity("City", name()) for _ in range(CITIES)]
        for c in cities:
            fact(c, "located_in", country)
        fact(country, "capital", cities[0])
        people = [entity("Person", f"{rng.choice(_FIRST)} {name()}") for _ in range(PEOPLE)]
        for p in people:
            fact(p, "born_in", rng.choice(cities))
            fact(p, "citizen_of", country)
            fact(p, "occupation", rng.choice(occupations))
        for a, b in zip(people[0:6:2], people[1:6:2]):
            fact(a, "spouse", b)
        for child, par in zip(people[10:15], people[0:5]):
            fact(child, "parent", par)
        for grandchild, par in zip(people[15:18], people[10:13]):
            fact(grandchild, "parent", par)
        fact(country, "head_of_state", people[0])
        fact(country, "head_of_government", people[1])
        unis = [entity("University", name() + " University") for _ in range(UNIS)]
        for u in unis:
            fact(u, "located_in", country)
        for p in people[::2]:
            fact(p, "educated_at", rng.choice(unis))
        for i in range(ORGS):
            org = entity("Organization", name() + " Group")
            fact(org, "headquarters", rng.choice(cities))
            fact(org, "industry", rng.choice(industries))
            fact(org, "ceo", people[2 + i])
            fact(org, "founded_by", people[5 + i])
            fact(people[8 + i], "employer", org)
    return out
