"""The shipped world KG: valid against its schema, with the promised coverage and correct facts."""

from __future__ import annotations

from collections import defaultdict

import pytest

import kg_data
from controller.validate import validate
from controller.world import read_world
from oneedit.core import Triple


@pytest.fixture(scope="module")
def world(schema):
    return read_world(kg_data.path(), schema)


@pytest.fixture(scope="module")
def facts(world, schema):
    by = defaultdict(set)
    for t in world.triples(schema):
        by[(t.subject, t.relation)].add(t.object)
    return by


def test_shipped_data_is_valid(world, schema):
    rep = validate(world.triples(schema), schema)
    assert rep.ok, [v.message for v in rep.violations[:10]]
    assert rep.derived > 500


def test_coverage(world, facts):
    by_type = defaultdict(list)
    for e in world.entities.values():
        by_type[e.type].append(e.id)
    assert len(by_type["Country"]) == 193
    for c in by_type["Country"]:
        assert facts[(c, "capital")] and facts[(c, "continent")] and facts[(c, "currency")], c
    with_languages = [c for c in by_type["Country"] if facts[(c, "official_language")]]
    assert len(with_languages) >= 185
    assert sum(1 for c in by_type["Country"] if facts[(c, "head_of_state")]) >= 40
    assert sum(1 for c in by_type["Country"] if facts[(c, "head_of_government")]) >= 40
    complete = [p for p in by_type["Person"]
                if facts[(p, "born_in")] and facts[(p, "citizen_of")] and facts[(p, "occupation")]]
    assert len(complete) >= 250
    orgs = [o for o in by_type["Organization"] if facts[(o, "headquarters")] and facts[(o, "industry")]]
    assert len(orgs) >= 80
    assert len(by_type["University"]) >= 50
    assert all(facts[(u, "located_in")] for u in by_type["University"])
    grandparents = sum(1 for p in by_type["Person"]
                       for par in facts[(p, "parent")] if facts[(par, "parent")])
    assert grandparents >= 5


def test_aliases(world):
    us = world.entities["united_states"]
    assert {"USA", "United States of America"} <= set(us.aliases) and us.label == "United States"
    assert "UK" in world.entities["united_kingdom"].aliases


# Facts that held on 2024-06-01 and are beyond doubt; a failure here means the data regressed.
KNOWN = [
    ("france", "capital", "paris"), ("germany", "capital", "berlin"), ("japan", "capital", "tokyo"),
    ("australia", "capital", "canberra"), ("canada", "capital", "ottawa"), ("brazil", "capital", "brasilia"),
    ("turkey", "capital", "ankara"), ("nigeria", "capital", "abuja"), ("india", "capital", "new_delhi"),
    ("paris", "capital_of", "france"), ("united_states", "capital", "washington_dc"),
    ("france", "continent", "europe"), ("brazil", "continent", "south_america"),
    ("kenya", "continent", "africa"), ("japan", "continent", "asia"),
    ("new_zealand", "continent", "oceania"), ("mexico", "continent", "north_america"),
    ("japan", "currency", "japanese_yen"), ("germany", "currency", "euro"),
    ("switzerland", "official_language", "german"), ("switzerland", "official_language", "french"),
    ("france", "head_of_state", "emmanuel_macron"), ("united_kingdom", "head_of_government", "rishi_sunak"),
    ("united_kingdom", "head_of_state", "charles_iii"), ("united_states", "head_of_state", "joe_biden"),
    ("germany", "head_of_government", "olaf_scholz"), ("india", "head_of_government", "narendra_modi"),
    ("japan", "head_of_government", "fumio_kishida"), ("china", "head_of_state", "xi_jinping"),
    ("albert_einstein", "born_in", "ulm"), ("marie_curie", "born_in", "warsaw"),
    ("ulm", "located_in", "germany"), ("warsaw", "located_in", "poland"),
    ("marie_curie", "spouse", "pierre_curie"), ("pierre_curie", "spouse", "marie_curie"),
    ("irene_joliot_curie", "parent", "marie_curie"), ("marie_curie", "child", "irene_joliot_curie"),
    ("apple", "ceo", "tim_cook"), ("tim_cook", "ceo_of", "apple"), ("microsoft", "ceo", "satya_nadella"),
    ("nvidia", "ceo", "jensen_huang"), ("apple", "founded_by", "steve_jobs"),
    ("microsoft", "founded_by", "bill_gates"), ("bill_gates", "founder_of", "microsoft"),
    ("apple", "headquarters", "cupertino"), ("microsoft", "headquarters", "redmond"),
    ("stanford_university", "located_in", "united_states"),
    ("university_of_oxford", "located_in", "united_kingdom"), ("eth_zurich", "located_in", "switzerland"),
]


@pytest.mark.parametrize("s, r, o", KNOWN)
def test_known_fact(facts, s, r, o):
    assert o in facts[(s, r)], f"expected ({s}, {r}, {o}); data has {sorted(facts[(s, r)])}"


def test_derived_facts_follow(world, schema):
    from controller.rules import derive_from

    by = defaultdict(list)
    for t in world.triples(schema):
        by[(t.subject, t.relation)].append(t.object)
    objects = lambda s, r: by.get((s, r), [])  # noqa: E731
    derived = {d.triple for d in derive_from("albert_einstein", schema.relations["birth_country"], objects)}
    assert derived == {Triple("albert_einstein", "birth_country", "germany")}
    spouse = {d.triple.object for d in derive_from("united_kingdom", schema.relations["head_of_state_spouse"], objects)}
    assert spouse == {"queen_camilla"}
