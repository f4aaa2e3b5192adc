"""`kg validate` reports every kind of violation in broken data, with where it came from."""

from __future__ import annotations

import pytest

from controller.validate import validate
from controller.world import read_world
from oneedit.core import ImportFormatError, Triple
from tests.conftest import write_world_with


def test_small_world_is_valid(small_world, schema):
    world = read_world(small_world, schema)
    rep = validate(world.triples(schema), schema)
    assert rep.ok, rep.violations
    assert rep.derived >= 3  # birth_country, birth_continent for Macron, Einstein, ...


def test_each_violation_kind_is_reported(tmp_path, schema):
    root = write_world_with(tmp_path / "bad", "broken.csv", [
        "id,type,label,aliases,description,capital,located_in,born_in,spouse,parent",
        # functional: a second capital for France (the country row already has paris)
        "france,Country,France,,,lyon,,,,",
        # range: a person as a capital; undefined entity: atlantis
        "germany,Country,Germany,,,albert_einstein,,,,",
        "ghost_city,City,Ghost City,,,,atlantis,,,",
        # domain: a country born somewhere
        "brigitte_macron,Person,Brigitte Macron,,,,,berlin,,",
        # self loop; duplicate label without description
        "hermann_einstein,Person,Hermann Einstein,,,,,,,hermann_einstein",
        "paris_texas,City,Paris,,,,france,,,",
    ])
    world = read_world(root, schema)
    rep = validate(world.triples(schema), schema,
                   sources={t: str(w) for t, w in world.fact_sources.items()})
    kinds = rep.by_kind()
    for kind in ("functional", "range", "undefined_entity", "self_loop", "duplicate_label"):
        assert kind in kinds, (kind, kinds)
    # Brigitte now has two birthplaces (amiens, berlin): functional on born_in as well.
    msgs = "\n".join(v.message for v in rep.violations)
    assert "'france' has 2 values for functional relation 'capital'" in msgs
    assert "'brigitte_macron' has 2 values for functional relation 'born_in'" in msgs
    assert "'atlantis' is not a defined entity" in msgs
    assert "albert_einstein' is a Person, but capital expects City" in msgs
    where = {v.where for v in rep.violations if v.kind == "self_loop"}
    assert where == {"broken.csv:6"}


def test_store_level_violations(schema):
    """Violations that CSV loading cannot produce but a raw KG can (mirrors, types, composites)."""
    t = [
        Triple("france", "type", "Country"), Triple("france", "label", "France"),
        Triple("paris", "type", "City"), Triple("paris", "label", "Paris"),
        Triple("lyon", "type", "City"), Triple("lyon", "type", "Country"), Triple("lyon", "label", "Lyon"),
        Triple("x", "label", "X"),  # no type
        Triple("y", "type", "Planet"), Triple("y", "label", "Y"),
        Triple("z", "type", "Person"),  # no label
        Triple("france", "capital", "paris"),  # capital_of mirror missing
        Triple("z", "spouse", "z2"),  # symmetric mirror missing (and z2 undefined)
        Triple("france", "frobnicates", "paris"),
        Triple("z", "birth_country", "france"),  # stored composite, not derivable
    ]
    rep = validate(t, schema)
    kinds = rep.by_kind()
    for kind in ("inverse_missing", "symmetric_missing", "unknown_relation", "missing_type",
                 "multiple_types", "unknown_type", "missing_label", "composite_not_derivable"):
        assert kind in kinds, (kind, kinds)


def test_malformed_world_rows_name_file_and_line(tmp_path, schema):
    root = write_world_with(tmp_path / "bad", "bad.csv", [
        "id,type,label,aliases,description,located_in,birth_country",
        "Not A Slug,City,X,,,france,",
        "ok_city,Spaceship,Y,,,france,",
        "paris,Country,Paris,,,,",  # redefines paris with another type
    ])
    with pytest.raises(ImportFormatError) as exc:
        read_world(root, schema)
    problems = exc.value.details["problems"]
    assert any("bad.csv:1" in p and "composite" in p for p in problems)
    assert any("bad.csv:2" in p and "slug" in p for p in problems)
    assert any("bad.csv:3" in p and "unknown type 'Spaceship'" in p for p in problems)
    assert any("bad.csv:4" in p and "already defined" in p for p in problems)
