"""Checking KG content against the schema (``oneedit kg validate``).

Works on any iterable of triples (a store's content or a data directory's), so the shipped data,
an import and a live workspace are all checked by the same code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from oneedit.core import Triple
from controller.linking import normalize
from controller.rules import derive_from
from controller.schema import Schema

KINDS = (
    "undefined_entity", "unknown_relation", "unknown_type", "missing_type", "multiple_types",
    "missing_label", "domain", "range", "functional", "inverse_missing", "symmetric_missing",
    "self_loop", "composite_not_derivable", "duplicate_label",
)


@dataclass(frozen=True, slots=True)
class Violation:
    kind: str
    message: str
    triple: Triple | None = None
    where: str | None = None  # source file:line when known

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "message": self.message}
        if self.triple:
            d["triple"] = list(self.triple.as_tuple())
        if self.where:
            d["where"] = self.where
        return d


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    checked_triples: int = 0
    entities: int = 0
    derived: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def by_kind(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for v in self.violations:
            out[v.kind] += 1
        return dict(out)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "checked_triples": self.checked_triples, "entities": self.entities,
                "derived_facts": self.derived, "violations_by_kind": self.by_kind(),
                "violations": [v.to_dict() for v in self.violations]}


def validate(triples: Iterable[Triple], schema: Schema, *,
             sources: dict[Triple, str] | None = None) -> Report:
    sources = sources or {}
    rep = Report()
    types: dict[str, list[str]] = defaultdict(list)
    labels: dict[str, list[str]] = defaultdict(list)
    descriptions: dict[str, str] = {}
    out: dict[tuple[str, str], list[str]] = defaultdict(list)
    facts: list[Triple] = []
    present: set[Triple] = set()
    for t in triples:
        rep.checked_triples += 1
        present.add(t)
        if t.relation == "type":
            types[t.subject].append(t.object)
        elif t.relation == "label":
            labels[t.subject].append(t.object)
        elif t.relation == "description":
            descriptions[t.subject] = t.object
        elif t.relation == "alias":
            pass
        else:
            facts.append(t)
            out[(t.subject, t.relation)].append(t.object)

    def where(t: Triple | None) -> str | None:
        if t is None:
            return None
        if t in sources:
            return sources[t]
        spec = schema.relations.get(t.relation)  # a mirror reports where its fact came from
        mirror = schema.mirror(t.relation) if spec else None
        return sources.get(Triple(t.object, mirror, t.subject)) if mirror else None

    def add(kind: str, msg: str, t: Triple | None = None) -> None:
        rep.violations.append(Violation(kind, msg, t, where(t)))

    entities = set(types) | set(labels)
    rep.entities = len(entities)
    for e in sorted(entities):
        ts = types.get(e, [])
        if not ts:
            add("missing_type", f"entity {e!r} has no type")
        elif len(ts) > 1:
            add("multiple_types", f"entity {e!r} has several types: {', '.join(sorted(ts))}")
        for ty in ts:
            if ty not in schema.types:
                add("unknown_type", f"entity {e!r} has unknown type {ty!r}")
        if len(labels.get(e, [])) != 1:
            add("missing_label", f"entity {e!r} needs exactly one label, has {len(labels.get(e, []))}")

    # Labels shared by several entities must be told apart by distinct descriptions.
    by_label: dict[str, list[str]] = defaultdict(list)
    for e, ls in labels.items():
        for lab in ls:
            by_label[normalize(lab)].append(e)
    for lab, ids in sorted(by_label.items()):
        if len(ids) > 1:
            descs = [descriptions.get(i, "") for i in ids]
            if "" in descs or len(set(descs)) < len(descs):
                add("duplicate_label", f"label {labels[ids[0]][0]!r} is shared by {', '.join(sorted(ids))} "
                    "without distinct descriptions")

    def type_of(e: str) -> str | None:
        ts = types.get(e)
        return ts[0] if ts else None

    for t in facts:
        spec = schema.relations.get(t.relation)
        if spec is None:
            add("unknown_relation", f"{t}: relation {t.relation!r} is not in the schema", t)
            continue
        if t.subject == t.object:
            add("self_loop", f"{t}: an entity cannot be related to itself", t)
        for role, e, allowed in (("domain", t.subject, spec.domain), ("range", t.object, spec.range)):
            ty = type_of(e)
            if ty is None:
                add("undefined_entity", f"{t}: {e!r} is not a defined entity", t)
            elif ty not in allowed:
                add(role, f"{t}: {e!r} is a {ty}, but {t.relation} expects {' or '.join(allowed)} "
                    f"as {'subject' if role == 'domain' else 'object'}", t)
        if spec.composite:
            continue
        mirror = schema.mirror(t.relation)
        if mirror and Triple(t.object, mirror, t.subject) not in present:
            kind = "symmetric_missing" if spec.symmetric else "inverse_missing"
            add(kind, f"{t}: missing its mirror ({t.object}, {mirror}, {t.subject})", t)

    for (s, r), objs in sorted(out.items()):
        spec = schema.relations.get(r)
        if spec and spec.functional and len(set(objs)) > 1:
            add("functional", f"{s!r} has {len(set(objs))} values for functional relation {r!r}: "
                f"{', '.join(sorted(set(objs)))}", Triple(s, r, sorted(objs)[0]))

    def objects(node: str, rel: str) -> list[str]:
        return out.get((node, rel), [])

    # Composite facts: every stored one must be derivable; count what the rules derive.
    for spec in schema.composite_relations():
        subjects = sorted({s for (s, r) in out if r == spec.rule[0]})
        derived = {d.triple for s in subjects for d in derive_from(s, spec, objects)}
        rep.derived += len(derived)
        for t in facts:
            if t.relation == spec.id and t not in derived:
                add("composite_not_derivable", f"{t}: stored composite fact does not follow from "
                    f"{' ∘ '.join(spec.rule)}", t)
    return rep
