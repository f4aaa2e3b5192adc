"""Shared fixtures: the shipped schema, fresh real stores, a small world data directory."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import kg_data
from controller.kg import KnowledgeGraph
from controller.schema import Schema
from controller.stores.embedded import EmbeddedStore
from oneedit.core import Entity, Triple

SMALL_WORLD = {
    "countries.csv": [
        "id,type,label,aliases,description,capital,continent,currency,official_language,head_of_state",
        "france,Country,France,French Republic,,paris,europe,euro,french,emmanuel_macron",
        "germany,Country,Germany,Deutschland,,berlin,europe,euro,german,",
    ],
    "cities.csv": [
        "id,type,label,aliases,description,located_in",
        "paris,City,Paris,,,france",
        "lyon,City,Lyon,,,france",
        "berlin,City,Berlin,,,germany",
        "ulm,City,Ulm,,,germany",
        "amiens,City,Amiens,,,france",
    ],
    "people.csv": [
        "id,type,label,aliases,description,born_in,citizen_of,occupation,spouse,parent",
        "emmanuel_macron,Person,Emmanuel Macron,Macron,,amiens,france,politician,brigitte_macron,",
        "brigitte_macron,Person,Brigitte Macron,,,amiens,france,,emmanuel_macron,",
        "albert_einstein,Person,Albert Einstein,Einstein,,ulm,germany,physicist,,",
        "hermann_einstein,Person,Hermann Einstein,,,,germany,,,",
        "eduard_einstein,Person,Eduard Einstein,,,,,,,albert_einstein",
    ],
    "vocab.csv": [
        "id,type,label,aliases,description",
        "europe,Continent,Europe,,",
        "euro,Currency,euro,EUR,",
        "french,Language,French,,",
        "german,Language,German,,",
        "politician,Occupation,politician,,",
        "physicist,Occupation,physicist,,",
    ],
}


def write_world(root: Path, files: dict[str, list[str]] | None = None) -> Path:
    """A data directory (schema.yaml + world/*.csv) with the given CSV files."""
    (root / "world").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(kg_data.schema_path(), root / "schema.yaml")
    for name, lines in (files or SMALL_WORLD).items():
        (root / "world" / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def write_world_with(root: Path, name: str, lines: list[str]) -> Path:
    """The small world plus one more CSV file (usually a broken one)."""
    return write_world(root, {**SMALL_WORLD, name: lines})


@pytest.fixture(scope="session")
def schema() -> Schema:
    return Schema.load(kg_data.schema_path())


@pytest.fixture
def small_world(tmp_path) -> Path:
    return write_world(tmp_path / "data")


@pytest.fixture
def store(tmp_path):
    s = EmbeddedStore(tmp_path / "kg")
    yield s
    s.close()


@pytest.fixture
def small_kg(tmp_path, schema, small_world):
    from controller.world import read_world

    world = read_world(small_world, schema)
    s = EmbeddedStore(tmp_path / "kg")
    kg = KnowledgeGraph(s, schema)
    kg.load_triples(world.triples(schema), author="test", message="load small world")
    yield kg
    s.close()


def entity_triples(*entities: Entity) -> list[Triple]:
    return [t for e in entities for t in e.triples()]
