"""The KG schema: entity types and relations, loaded from a YAML file (``kg_data/schema.yaml``).

Relations carry what the rest of the system needs: label and phrases (the interpreter),
cardinality, inverse/symmetric flags and domain/range types (the controller), verbalisation
templates (the editor), and for composite relations the rule (a chain of base relations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from oneedit.core import SchemaError, is_valid_id

Cardinality = Literal["one", "many"]


@dataclass(frozen=True, slots=True)
class Templates:
    train: tuple[str, ...]
    heldout: tuple[str, ...]

    def all(self) -> tuple[str, ...]:
        return self.train + self.heldout


#: what an event verb of a relation may imply (see ``RelationSpec.events``)
EVENT_OPS = ("assert", "retract", "replace")


@dataclass(frozen=True, slots=True)
class RelationSpec:
    id: str
    label: str
    phrases: tuple[str, ...]
    cardinality: Cardinality
    domain: tuple[str, ...]
    range: tuple[str, ...]
    templates: Templates
    inverse: str | None = None
    symmetric: bool = False
    rule: tuple[str, ...] = ()
    #: event verbs and the operation each implies ("joined": assert, "quit": retract, "moved its
    #: head office to": replace), read as phrases of the relation by the interpreter
    events: tuple[tuple[str, tuple[str, ...]], ...] = ()  # ((op, verbs), ...)

    @property
    def functional(self) -> bool:
        return self.cardinality == "one"

    @property
    def composite(self) -> bool:
        return bool(self.rule)


@dataclass(frozen=True, slots=True)
class Schema:
    snapshot: str
    namespace: str
    types: dict[str, str]
    relations: dict[str, RelationSpec]
    source: Path | None = field(default=None, compare=False)
    #: Other words people use for a type ("company" for Organization), for the interpreter.
    type_aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    # -- lookups ---------------------------------------------------------------------------
    def relation(self, relation_id: str) -> RelationSpec:
        try:
            return self.relations[relation_id]
        except KeyError:
            from oneedit.core import UnknownRelationError

            from controller.linking import closest

            near = closest(relation_id, self.relation_names())
            raise UnknownRelationError(
                f"Unknown relation {relation_id!r}.",
                hint=("Did you mean: " + ", ".join(near) + "?") if near else
                "Run `oneedit kg stats --json` to list the schema's relations.",
                details={"relation": relation_id, "closest": near},
            ) from None

    def relation_names(self) -> list[str]:
        return sorted(self.relations)

    def base_relations(self) -> list[RelationSpec]:
        return [r for r in self.relations.values() if not r.composite]

    def composite_relations(self) -> list[RelationSpec]:
        return [r for r in self.relations.values() if r.composite]

    def mirror(self, relation_id: str) -> str | None:
        """The relation that holds in the other direction, if the schema keeps one."""
        spec = self.relations[relation_id]
        if spec.symmetric:
            return spec.id
        return spec.inverse

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Schema:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SchemaError(f"Schema file not found: {path}",
                              hint="Point the workspace at an existing schema.yaml.") from None
        except yaml.YAMLError as exc:
            raise SchemaError(f"Schema file {path} is not valid YAML: {exc}") from None
        return cls.from_dict(raw, source=path)

    @classmethod
    def from_dict(cls, raw: dict, source: Path | None = None) -> Schema:
        where = str(source or "schema")
        if not isinstance(raw, dict) or "relations" not in raw or "types" not in raw:
            raise SchemaError(f"{where}: expected top-level keys 'types' and 'relations'.")
        types = {name: (spec or {}).get("label", name.lower()) for name, spec in raw["types"].items()}
        type_aliases = {name: tuple(str(a) for a in (spec or {}).get("aliases", ()))
                        for name, spec in raw["types"].items()}
        relations: dict[str, RelationSpec] = {}
        for rid, spec in raw["relations"].items():
            relations[rid] = _relation_from_dict(rid, spec or {}, types, where)
        schema = cls(
            snapshot=str(raw.get("snapshot", "")),
            namespace=str(raw.get("namespace", "urn:oneedit:")),
            types=types,
            relations=relations,
            source=source,
            type_aliases=type_aliases,
        )
        _check_links(schema, where)
        return schema


def _relation_from_dict(rid: str, spec: dict, types: dict[str, str], where: str) -> RelationSpec:
    if not is_valid_id(rid):
        raise SchemaError(f"{where}: relation id {rid!r} must be a lowercase slug.")
    card = spec.get("cardinality", "many")
    if card not in ("one", "many"):
        raise SchemaError(f"{where}: relation {rid!r} has cardinality {card!r}; use 'one' or 'many'.")
    domain, range_ = tuple(spec.get("domain", ())), tuple(spec.get("range", ()))
    for t in (*domain, *range_):
        if t not in types:
            raise SchemaError(f"{where}: relation {rid!r} uses unknown type {t!r}.",
                              hint=f"Known types: {', '.join(sorted(types))}.")
    if not domain or not range_:
        raise SchemaError(f"{where}: relation {rid!r} needs a domain and a range.")
    tmpl = spec.get("templates") or {}
    templates = Templates(tuple(tmpl.get("train", ())), tuple(tmpl.get("heldout", ())))
    for t in templates.all():
        if "{subject}" not in t or "{object}" not in t:
            raise SchemaError(f"{where}: template {t!r} of {rid!r} needs {{subject}} and {{object}}.")
    events = spec.get("events") or {}
    if not isinstance(events, dict) or set(events) - set(EVENT_OPS):
        raise SchemaError(f"{where}: events of {rid!r} must map {', '.join(EVENT_OPS)} to lists of verb phrases.",
                          hint="e.g. events: {assert: [joined], retract: [quit, left]}")
    for op, verbs in events.items():
        if not isinstance(verbs, list) or not all(isinstance(v, str) and v.strip() for v in verbs):
            raise SchemaError(f"{where}: events.{op} of {rid!r} must be a list of verb phrases.")
    return RelationSpec(
        id=rid,
        label=str(spec.get("label", rid.replace("_", " "))),
        phrases=tuple(spec.get("phrases", ())),
        cardinality=card,
        domain=domain,
        range=range_,
        templates=templates,
        inverse=spec.get("inverse"),
        symmetric=bool(spec.get("symmetric", False)),
        rule=tuple(spec.get("rule", ())),
        events=tuple((op, tuple(v)) for op, v in events.items()),
    )


def _check_links(schema: Schema, where: str) -> None:
    rels = schema.relations
    for r in rels.values():
        if r.inverse:
            inv = rels.get(r.inverse)
            if inv is None:
                raise SchemaError(f"{where}: {r.id!r} names unknown inverse {r.inverse!r}.")
            if inv.inverse != r.id:
                raise SchemaError(f"{where}: {r.id!r} and {inv.id!r} must name each other as inverse.")
            if set(inv.domain) != set(r.range) or set(inv.range) != set(r.domain):
                raise SchemaError(f"{where}: inverse pair {r.id!r}/{inv.id!r} has mismatched types.")
        if r.symmetric and (set(r.domain) != set(r.range) or r.inverse):
            raise SchemaError(f"{where}: symmetric {r.id!r} needs domain == range and no inverse.")
        if r.rule:
            _check_rule(schema, r, where)


def _check_rule(schema: Schema, r: RelationSpec, where: str) -> None:
    rels = schema.relations
    prev_range: set[str] | None = None
    for step in r.rule:
        s = rels.get(step)
        if s is None or s.composite:
            raise SchemaError(f"{where}: rule of {r.id!r} uses {step!r}, which is not a base relation.")
        if prev_range is not None and not prev_range & set(s.domain):
            raise SchemaError(f"{where}: rule of {r.id!r} cannot chain into {step!r} (types do not meet).")
        prev_range = set(s.range)
    first, last = rels[r.rule[0]], rels[r.rule[-1]]
    if not set(r.domain) <= set(first.domain) or not set(r.range) <= set(last.range):
        raise SchemaError(f"{where}: composite {r.id!r} has domain/range outside its rule's.")
