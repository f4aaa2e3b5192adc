"""The schema-aware knowledge graph: a store plus a schema.

Every change goes through here so the KG stays valid: names resolve to entities and relations,
facts are checked against domain/range types and cardinality, inverse and symmetric mirrors are
written and removed together with their facts, and each change is one revision of the store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from oneedit.core import (
    META_PREDICATES,
    ConstraintViolation,
    Diff,
    Entity,
    ImportFormatError,
    Revision,
    Triple,
    UnknownEntityError,
    UnknownRelationError,
)
from controller.linking import closest, normalize
from controller.rules import DerivedFact, derive_all, derive_from
from controller.schema import RelationSpec, Schema
from controller.stores.base import KGStore
from controller.validate import Report, Violation, validate


@dataclass(frozen=True, slots=True)
class ImportResult:
    file: str
    rows: int
    revision: Revision | None
    added: int
    removed: int


class Overlay:
    """The store as it would be after a pending change ``want`` (triple -> present?), for checking
    and planning before anything is committed. ``want`` is indexed once: make a new overlay after
    changing it."""

    def __init__(self, store: KGStore, want: dict[Triple, bool]):
        self.store, self.want = store, want
        self.by_sr: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)
        self.by_ro: dict[tuple[str, str], dict[str, bool]] = defaultdict(dict)
        for t, present in want.items():
            self.by_sr[(t.subject, t.relation)][t.object] = present
            self.by_ro[(t.relation, t.object)][t.subject] = present

    @staticmethod
    def _merge(stored: Iterable[str], pending: dict[str, bool]) -> list[str]:
        out = set(stored)
        for value, present in pending.items():
            (out.add if present else out.discard)(value)
        return sorted(out)

    def objects(self, s: str, r: str) -> list[str]:
        return self._merge(self.store.objects(s, r), self.by_sr.get((s, r), {}))

    def subjects(self, r: str, o: str) -> list[str]:
        return self._merge(self.store.subjects(r, o), self.by_ro.get((r, o), {}))

    def has(self, t: Triple) -> bool:
        return self.want[t] if t in self.want else self.store.contains(t)

    def type_of(self, e: str) -> str | None:
        types = self.objects(e, "type")
        return types[0] if types else None


class KnowledgeGraph:
    def __init__(self, store: KGStore, schema: Schema):
        self.store = store
        self.schema = schema

    # -- names -----------------------------------------------------------------------------
    def resolve_entity(self, name: str) -> Entity:
        """An entity by id, label or alias (case-insensitive). Never guesses between several."""
        name = name.strip()
        matches = self.store.find_entities(name, limit=5, fuzzy=False)
        if len(matches) == 1 or (matches and matches[0].how == "id"):
            return matches[0].entity
        if len(matches) > 1:
            opts = ", ".join(f"{m.entity.id} ({m.entity.label}"
                             + (f", {m.entity.description}" if m.entity.description else "") + ")"
                             for m in matches)
            raise UnknownEntityError(f"{name!r} is ambiguous: it names {len(matches)} entities.",
                                     hint=f"Use an id: {opts}.",
                                     details={"name": name, "candidates": [m.entity.id for m in matches]})
        near = self.store.find_entities(name, limit=3, fuzzy=True)
        near = [m for m in near if m.score >= near[0].score - 0.1] if near else []
        hint = ("Closest matches: " + ", ".join(f"{m.entity.label} ({m.entity.id})" for m in near)
                if near else "Search with `oneedit kg query` or check the spelling.")
        raise UnknownEntityError(f"No entity named {name!r}.", hint=hint,
                                 details={"name": name, "closest": [m.entity.id for m in near]})

    def resolve_relation(self, name: str) -> RelationSpec:
        """A relation by id, label or one of its phrases (case-insensitive)."""
        key = normalize(name).replace(" ", "_")
        if key in self.schema.relations:
            return self.schema.relations[key]
        norm = normalize(name)
        for spec in self.schema.relations.values():
            if norm == normalize(spec.label):
                return spec
        hits = [s for s in self.schema.relations.values() if norm in {normalize(p) for p in s.phrases}]
        if len(hits) > 1 and len([h for h in hits if not h.composite]) == 1:
            # "born in" names born_in and the derived birth_country: the stored one is meant.
            hits = [h for h in hits if not h.composite]
        if len(hits) == 1:
            return hits[0]
        names = self.schema.relation_names()
        near = closest(name, names)
        hint = ("Did you mean: " + ", ".join(near) + "?") if near else f"Relations: {', '.join(names)}."
        if len(hits) > 1:
            hint = f"{name!r} could mean {', '.join(h.id for h in hits)}: use the relation id."
        raise UnknownRelationError(f"Unknown relation {name!r}.", hint=hint,
                                   details={"relation": name, "closest": near})

    # -- reading ---------------------------------------------------------------------------
    def query(self, subject: str | None = None, relation: str | None = None,
              object: str | None = None, *, limit: int | None = None) -> list[Triple]:
        s = self.resolve_entity(subject).id if subject else None
        r = self.resolve_relation(relation).id if relation else None
        o = self.resolve_entity(object).id if object else None
        if r and self.schema.relations[r].composite:
            facts = [d.triple for d in self.derived(r, subject=s) if o is None or d.triple.object == o]
        else:
            facts = [t for t in self.store.triples(s, r, o) if not t.is_meta]
        facts.sort()
        return facts[:limit] if limit else facts

    def label(self, entity_id: str) -> str:
        e = self.store.entity(entity_id)
        return e.label if e else entity_id

    def derived(self, relation: str | None = None, *, subject: str | None = None) -> list[DerivedFact]:
        objects = self.store.objects
        if relation is None and subject is None:
            return derive_all(self.schema, lambda r: (t.subject for t in self.store.triples(None, r, None)),
                              objects)
        specs = [self.schema.relations[relation]] if relation else self.schema.composite_relations()
        out: list[DerivedFact] = []
        for spec in specs:
            subjects = [subject] if subject else sorted({t.subject for t in self.store.triples(None, spec.rule[0], None)})
            for s in subjects:
                out.extend(derive_from(s, spec, objects))
        return out

    def stats(self) -> dict:
        per_rel: dict[str, int] = defaultdict(int)
        per_type: dict[str, int] = defaultdict(int)
        total = 0
        for t in self.store.triples():
            total += 1
            if t.relation == "type":
                per_type[t.object] += 1
            elif not t.is_meta:
                per_rel[t.relation] += 1
        head = self.store.head()
        return {
            "triples": total,
            "facts": sum(per_rel.values()),
            "entities": sum(per_type.values()),
            "relations": len(self.schema.relations),
            "base_relations": len(self.schema.base_relations()),
            "composite_relations": len(self.schema.composite_relations()),
            "derived_facts": len(self.derived()),
            "revision": head,
            "snapshot": self.schema.snapshot,
            "entities_by_type": dict(sorted(per_type.items())),
            "facts_by_relation": dict(sorted(per_rel.items())),
        }

    def validate(self) -> Report:
        return validate(self.store.triples(), self.schema)

    # -- checking --------------------------------------------------------------------------
    def check(self, want: dict[Triple, bool]) -> list[Violation]:
        """Violations the KG would have after applying ``want`` (triple -> present?)."""
        ov = Overlay(self.store, want)
        out: list[Violation] = []
        touched: set[tuple[str, str]] = set()
        for t, present in want.items():
            if t.is_meta:
                if t.relation == "type" and present and t.object not in self.schema.types:
                    out.append(Violation("unknown_type", f"{t}: unknown type {t.object!r}", t))
                continue
            spec = self.schema.relations.get(t.relation)
            if spec is None:
                out.append(Violation("unknown_relation", f"{t}: relation {t.relation!r} is not in the schema", t))
                continue
            if spec.composite:
                out.append(Violation("composite", f"{t}: {t.relation} is derived by the rule "
                                     f"{' ∘ '.join(spec.rule)}; change those facts instead", t))
                continue
            touched.add((t.subject, t.relation))
            mirror = self.schema.mirror(t.relation)
            if mirror:
                m = Triple(t.object, mirror, t.subject)
                touched.add((m.subject, m.relation))
                if ov.has(m) != present:
                    kind = "symmetric_missing" if spec.symmetric else "inverse_missing"
                    out.append(Violation(kind, f"{t} and its mirror {m} must change together", t))
            if not present:
                continue
            if t.subject == t.object:
                out.append(Violation("self_loop", f"{t}: an entity cannot be related to itself", t))
            for role, e, allowed in (("domain", t.subject, spec.domain), ("range", t.object, spec.range)):
                ty = ov.type_of(e)
                if ty is None:
                    out.append(Violation("undefined_entity", f"{t}: {e!r} is not a defined entity", t))
                elif ty not in allowed:
                    out.append(Violation(role, f"{t}: {e!r} is a {ty}, but {t.relation} expects "
                                         f"{' or '.join(allowed)} as {'subject' if role == 'domain' else 'object'}", t))
        for s, r in sorted(touched):
            spec = self.schema.relations[r]
            if spec.functional:
                objs = ov.objects(s, r)
                if len(objs) > 1:
                    out.append(Violation(
                        "functional", f"{s!r} would have {len(objs)} values for functional relation "
                        f"{r!r}: {', '.join(objs)}", Triple(s, r, objs[0])))
        return out

    def _raise_violations(self, violations: list[Violation], what: str, hint: str,
                          lines: dict[Triple, int] | None = None) -> None:
        if not violations:
            return
        lines = lines or {}
        msgs = []
        for v in violations[:20]:
            line = lines.get(v.triple) if v.triple else None
            msgs.append((f"line {line}: " if line else "") + v.message)
        more = f"\n... and {len(violations) - 20} more" if len(violations) > 20 else ""
        raise ConstraintViolation(f"{what} was refused; nothing changed:\n" + "\n".join(msgs) + more,
                                  hint=hint, details={"violations": [v.to_dict() for v in violations]})

    def _with_mirrors(self, facts: Iterable[tuple[Triple, bool]]) -> dict[Triple, bool]:
        want: dict[Triple, bool] = {}
        for t, present in facts:
            want[t] = present
            if not t.is_meta and t.relation in self.schema.relations:
                mirror = self.schema.mirror(t.relation)
                if mirror and not self.schema.relations[t.relation].composite:
                    want[Triple(t.object, mirror, t.subject)] = present
        return want

    # -- writing ---------------------------------------------------------------------------
    def add_fact(self, subject: str, relation: str, object: str, *, author: str,
                 message: str | None = None) -> Revision:
        s, spec, o = self.resolve_entity(subject), self.resolve_relation(relation), self.resolve_entity(object)
        t = Triple(s.id, spec.id, o.id)
        if self.store.contains(t):
            raise ConstraintViolation(f"{t} is already in the KG; nothing changed.")
        want = self._with_mirrors([(t, True)])
        violations = self.check(want)
        hint = "Fix the fact and try again."
        if any(v.kind == "functional" for v in violations):
            current = [x for x in self.store.objects(s.id, spec.id)]
            hint = (f"{spec.id} is functional and {s.label} already has "
                    f"{', '.join(self.label(c) for c in current) or 'a value'}: remove it first "
                    f"(`oneedit kg remove {s.id} {spec.id} {current[0] if current else '…'}`).")
        self._raise_violations(violations, f"Adding {t}", hint)
        rev = self.store.commit(self.store.exact_diff(want), author, message or f"Add {t}")
        assert rev is not None
        return rev

    def remove_fact(self, subject: str, relation: str, object: str, *, author: str,
                    message: str | None = None) -> Revision:
        s, spec, o = self.resolve_entity(subject), self.resolve_relation(relation), self.resolve_entity(object)
        t = Triple(s.id, spec.id, o.id)
        if spec.composite:
            self._raise_violations(self.check({t: False}), f"Removing {t}", "Remove one of the base facts.")
        if not self.store.contains(t):
            have = self.store.objects(s.id, spec.id)
            raise ConstraintViolation(
                f"{t} is not in the KG; nothing changed.",
                hint=(f"{s.label} has {spec.id}: {', '.join(have)}." if have else
                      f"{s.label} has no {spec.id} facts."))
        want = self._with_mirrors([(t, False)])
        rev = self.store.commit(self.store.exact_diff(want), author, message or f"Remove {t}")
        assert rev is not None
        return rev

    def load_triples(self, triples: Iterable[Triple], *, author: str, message: str) -> Revision | None:
        """Load pre-validated triples (the shipped world, a synthetic world) as one revision."""
        return self.store.bulk_load(triples, author, message)

    def revert(self, rev_id: int, *, author: str) -> tuple[Revision | None, list[Triple]]:
        diff, skipped = self.store.plan_revert(rev_id)
        self._check_history_diff(diff, f"Reverting r{rev_id}",
                                 f"Later revisions depend on r{rev_id}; revert them first, or "
                                 f"`oneedit kg restore {rev_id - 1}` to return to the state before it.")
        rev = self.store.commit(diff, author, f"Revert r{rev_id}: {self.store.revision(rev_id).message}")
        return rev, skipped

    def restore(self, rev_id: int, *, author: str) -> Revision | None:
        diff = self.store.plan_restore(rev_id)
        return self.store.commit(diff, author, f"Restore to r{rev_id}")

    def _check_history_diff(self, diff: Diff, what: str, hint: str) -> None:
        want = {t: True for t in diff.added} | {t: False for t in diff.removed}
        self._raise_violations(self.check(want), what, hint)

    # -- import / export -------------------------------------------------------------------
    def import_file(self, path: str | Path, fmt: str | None = None, *, author: str) -> ImportResult:
        from controller.io import read_rows

        terms = getattr(self.store, "terms", None)
        rows = read_rows(path, fmt, terms=terms)
        path = Path(path)
        defined: dict[str, str] = {}  # ids defined by type rows in this file
        for r in rows:
            if r.relation == "type" and r.op == "add":
                defined[r.subject] = r.object
        facts: list[tuple[Triple, bool]] = []
        lines: dict[Triple, int] = {}
        for r in rows:
            try:
                t = self._resolve_row(r, defined)
            except (UnknownEntityError, UnknownRelationError) as exc:
                raise ImportFormatError(f"{path.name}, line {r.line}: {exc.message}",
                                        hint=(exc.hint or "") + " Nothing from this file was applied.",
                                        details={"file": str(path), "line": r.line}) from None
            facts.append((t, r.op == "add"))
            lines.setdefault(t, r.line)
        want = self._with_mirrors(facts)
        for t, line in list(lines.items()):
            spec = self.schema.relations.get(t.relation)
            mirror = self.schema.mirror(t.relation) if spec else None
            if mirror:
                lines.setdefault(Triple(t.object, mirror, t.subject), line)
        message = f"Import {path.name} ({len(rows)} rows)"
        if self.store.count() == 0 and all(want.values()):
            # Into an empty KG the whole file can be checked in memory at once (the same checks
            # as `kg validate`), then bulk-loaded: ~10x faster than row-by-row store checks.
            report = validate(want, self.schema)
            self._raise_violations(report.violations, f"Importing {path.name}",
                                   "Fix the lines named above and import again.", lines)
            rev = self.store.bulk_load(want, author, message)
            return ImportResult(str(path), len(rows), rev, len(want), 0)
        self._raise_violations(self.check(want), f"Importing {path.name}",
                               "Fix the lines named above and import again.", lines)
        diff = self.store.exact_diff(want)
        rev = self.store.commit(diff, author, message)
        return ImportResult(str(path), len(rows), rev, len(diff.added), len(diff.removed))

    def _resolve_row(self, r, defined: dict[str, str]) -> Triple:
        if r.resolved:
            return Triple(r.subject, r.relation, r.object)
        if r.relation in META_PREDICATES:
            return Triple(r.subject, r.relation, r.object)
        spec = self.resolve_relation(r.relation)
        s = r.subject if r.subject in defined else self.resolve_entity(r.subject).id
        o = r.object if r.object in defined else self.resolve_entity(r.object).id
        return Triple(s, spec.id, o)

    def export(self, out, fmt: str) -> int:
        from controller.io import write_triples

        return write_triples(sorted(self.store.triples()), out, fmt, getattr(self.store, "terms", None))

