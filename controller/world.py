"""Reading a world KG from its data files (``kg_data/world/*.csv``: one entity per row).

Rows give forward facts only; ``materialize`` adds the inverse and symmetric mirror facts the
schema defines, so the stored KG holds both directions and stays consistent.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from oneedit.core import Entity, ImportFormatError, SourceLine, Triple, is_valid_id
from controller.schema import Schema

FIXED_COLUMNS = ("id", "type", "label", "aliases", "description")


@dataclass
class WorldData:
    entities: dict[str, Entity] = field(default_factory=dict)
    facts: list[Triple] = field(default_factory=list)
    sources: dict[str, SourceLine] = field(default_factory=dict)  # entity id -> where defined
    fact_sources: dict[Triple, SourceLine] = field(default_factory=dict)

    def triples(self, schema: Schema) -> list[Triple]:
        """Entity descriptions plus facts with their inverse/symmetric mirrors, deduplicated."""
        out: dict[Triple, None] = {}
        for e in self.entities.values():
            out.update(dict.fromkeys(e.triples()))
        out.update(dict.fromkeys(materialize(self.facts, schema)))
        return list(out)


def materialize(facts: Iterable[Triple], schema: Schema) -> Iterator[Triple]:
    """Each fact, followed by its mirror where the relation has an inverse or is symmetric."""
    for t in facts:
        yield t
        if t.relation in schema.relations:
            mirror = schema.mirror(t.relation)
            if mirror:
                yield Triple(t.object, mirror, t.subject)


def read_world(directory: str | Path, schema: Schema) -> WorldData:
    """Read every ``*.csv`` under ``directory`` (or ``directory/world``).

    Raises ``ImportFormatError`` listing each malformed row (file and line); nothing is returned
    partially. Rows with the same id in several files are merged when their type and label agree.
    """
    directory = Path(directory)
    if (directory / "world").is_dir():
        directory = directory / "world"
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise ImportFormatError(f"No world data (*.csv) found in {directory}.")
    world = WorldData()
    problems: list[str] = []
    for path in files:
        _read_file(path, schema, world, problems)
    if problems:
        shown = problems[:20]
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ImportFormatError(
            f"{len(problems)} problem(s) in the world data:\n" + "\n".join(shown) + more,
            hint="Fix the rows named above; see kg_data/FORMAT.md for the format.",
            details={"problems": problems})
    return world


def _read_file(path: Path, schema: Schema, world: WorldData, problems: list[str]) -> None:
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in ("id", "type", "label") if c not in header]
        if missing:
            problems.append(f"{path.name}:1: missing column(s) {', '.join(missing)}")
            return
        rel_cols = [c for c in header if c not in FIXED_COLUMNS]
        for c in rel_cols:
            if c not in schema.relations:
                problems.append(f"{path.name}:1: column {c!r} is not a relation of the schema")
            elif schema.relations[c].composite:
                problems.append(f"{path.name}:1: column {c!r} is a composite relation (derived, not written)")
        rel_cols = [c for c in rel_cols if c in schema.relations and not schema.relations[c].composite]
        for row in reader:
            where = SourceLine(path.name, reader.line_num)
            eid, etype, label = (row.get("id") or "").strip(), (row.get("type") or "").strip(), \
                (row.get("label") or "").strip()
            if not is_valid_id(eid):
                problems.append(f"{where}: id {eid!r} is not a lowercase slug")
                continue
            if etype not in schema.types:
                problems.append(f"{where}: {eid}: unknown type {etype!r}")
                continue
            if not label:
                problems.append(f"{where}: {eid}: empty label")
                continue
            aliases = tuple(a.strip() for a in (row.get("aliases") or "").split("|")
                            if a.strip() and a.strip() != label)
            entity = Entity(eid, etype, label, tuple(sorted(set(aliases))),
                            (row.get("description") or "").strip())
            prev = world.entities.get(eid)
            if prev is not None:
                if (prev.type, prev.label) != (entity.type, entity.label):
                    problems.append(f"{where}: {eid} is already defined at {world.sources[eid]} as "
                                    f"{prev.type} {prev.label!r}")
                    continue
                entity = Entity(eid, etype, label, tuple(sorted(set(prev.aliases) | set(aliases))),
                                prev.description or entity.description)
            else:
                world.sources[eid] = where
            world.entities[eid] = entity
            for rel in rel_cols:
                for obj in (row.get(rel) or "").split("|"):
                    obj = obj.strip()
                    if not obj:
                        continue
                    if not is_valid_id(obj):
                        problems.append(f"{where}: {eid}.{rel}: {obj!r} is not an entity id")
                        continue
                    t = Triple(eid, rel, obj)
                    if t not in world.fact_sources:
                        world.facts.append(t)
                        world.fact_sources[t] = where
