"""From edit intents to an edit plan: conflicts, their resolution, and the facts that follow.

:class:`Planner` reads the KG and changes nothing. For each ``assert``/``replace``/``retract`` intent:

* **Conflicts.** A functional relation conflicts with *every* value it already has; the inverse or
  symmetric mirror of each new fact is checked the same way (Ivana Trump's new spouse retracts her
  old marriage *and* its mirror, and also checks whether the new spouse already has one). Domain
  and range types, self-loops, composite relations and protected facts are conflicts too.
* **Resolution**, per relation and per user role (:class:`ResolutionPolicy`): ``replace``
  (retract the old facts; the revision log keeps them), ``reject``, or ``needs_review``.
* **Augmentation.** Inverse and symmetric mirrors go into the KG diff; composite facts derived
  through the schema's rules (``birth_country = born_in ∘ located_in``) are recomputed before and
  after, and the difference is listed with provenance. Derived facts are never stored.
* **Model facts**: what the model must answer after the edit — the new functional facts, their
  mirrors and the composite facts that now hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from oneedit.core import GAP, EditIntent, Entity, OneEditError, Triple, slugify
from oneedit.core.plan import RESOLUTIONS, Conflict, DerivedChange, EditPlan
from oneedit.core.types import Diff
from controller.kg import Overlay
from controller.rules import derive_from

EDIT_OPS = ("assert", "replace", "retract")


class AmbiguousRequest(OneEditError):
    """A name in the request fits several entities; the person must choose."""


@dataclass
class ResolutionPolicy:
    """How conflicts are resolved, per relation and per role.

    Lookup order: ``relations[rel][role]``, ``relations[rel]["*"]`` (or ``relations[rel]`` when it
    is a plain string), ``roles[role]``, then ``default``. Example (``config.yaml``)::

        resolution:
          default: replace
          roles: {editor: replace}
          relations:
            head_of_state: {editor: needs_review, curator: replace}
            spouse: needs_review
    """

    default: str = "replace"
    roles: dict[str, str] = field(default_factory=dict)
    relations: dict[str, str | dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        values = [self.default, *self.roles.values()]
        for v in self.relations.values():
            values += list(v.values()) if isinstance(v, dict) else [v]
        bad = [v for v in values if v not in RESOLUTIONS]
        if bad:
            raise OneEditError(f"Unknown conflict resolution {bad[0]!r} in the workspace's resolution policy.",
                               hint=f"Use one of: {', '.join(RESOLUTIONS)}.")

    @classmethod
    def from_dict(cls, d: dict | None) -> ResolutionPolicy:
        d = dict(d or {})
        unknown = set(d) - {"default", "roles", "relations"}
        if unknown:
            raise OneEditError(f"Unknown key(s) in the resolution policy: {', '.join(sorted(unknown))}.",
                               hint="The policy has default, roles and relations.")
        return cls(d.get("default", "replace"), dict(d.get("roles") or {}), dict(d.get("relations") or {}))

    def resolve(self, relation: str, role: str) -> str:
        rule = self.relations.get(relation)
        if isinstance(rule, str):
            return rule
        if isinstance(rule, dict):
            if role in rule:
                return rule[role]
            if "*" in rule:
                return rule["*"]
        return self.roles.get(role, self.default)


class Planner:
    """Plans edits against a :class:`controller.kg.KnowledgeGraph` (read-only).

    ``protected``: anything with ``which(triples) -> set[Triple]`` (the protected ones).
    """

    def __init__(self, kg, *, policy: ResolutionPolicy | None = None, protected=None):
        self.kg = kg
        self.schema = kg.schema
        self.store = kg.store
        self.policy = policy or ResolutionPolicy()
        self.protected = protected

    # -- entry point ---------------------------------------------------------------------------
    def plan(self, intents: Sequence[EditIntent], *, role: str = "admin") -> EditPlan:
        base = self.store.head()  # what the plan is made against; the commit checks it still is
        want: dict[Triple, bool] = {}
        conflicts: list[Conflict] = []
        requested: list[tuple[str, Triple]] = []
        new_entities: dict[str, Entity] = {}
        for intent in intents:
            if intent.op not in EDIT_OPS:
                raise OneEditError(f"{intent.op!r} is not an edit; only {', '.join(EDIT_OPS)} change facts.",
                                   hint="Questions go to `oneedit ask`, undo to `oneedit rollback`.")
            self._plan_intent(intent, role, want, conflicts, requested, new_entities)
        for e in new_entities.values():
            for t in e.triples():
                want[t] = True
        conflicts += self._violations(want, {t for _, t in requested})
        conflicts += self._protected(want, role)
        diff = self.store.exact_diff(want)
        derived = self._derived(want, diff)
        return EditPlan(requested=requested, diff=diff, conflicts=_dedupe(conflicts),
                        new_entities=list(new_entities.values()), derived=derived,
                        model_facts=self._model_facts(diff, derived), base_revision=base).decided()

    # -- one intent ----------------------------------------------------------------------------
    def _plan_intent(self, intent: EditIntent, role: str, want: dict[Triple, bool],
                     conflicts: list[Conflict], requested: list, new_entities: dict[str, Entity]) -> None:
        require_choices(intent)
        spec = self.schema.relations.get(intent.relation or "")
        if spec is None:
            raise OneEditError(f"The request names no relation the schema knows ({intent.relation!r}).",
                               hint="Run `oneedit parse` on it to see how it was read.")
        if intent.subject is None:
            raise OneEditError("The request has no subject.", hint="Say whose fact it is.")
        s = self._entity(intent.subject, spec.domain, new_entities, intent.op)
        if intent.object is None:
            if intent.op != "retract":
                raise OneEditError("The request has no object.", hint="Say what the new value is.")
            objs = [o for o in self._objects(s, spec.id, want)]
            if not objs:
                conflicts.append(Conflict("absent", None, f"{self.kg.label(s)} has no {spec.id} facts to "
                                          "retract.", "reject"))
            for o in objs:
                t = Triple(s, spec.id, o)
                requested.append(("retract", t))
                self._set(t, False, want)
            return
        o = self._entity(intent.object, spec.range, new_entities, intent.op)
        t = Triple(s, spec.id, o)
        requested.append((intent.op, t))
        if intent.op == "retract":
            if not self._has(t, want):
                conflicts.append(Conflict("absent", t, f"{self._fmt(t)} is not in the KG.", "reject"))
            self._set(t, False, want)
            return
        if spec.composite:
            conflicts.append(Conflict("composite", t, f"{spec.id} is derived by the rule "
                                      f"{' ∘ '.join(spec.rule)}; change one of those facts instead.", "reject"))
            return
        # replace on a multi-valued relation: the new value becomes the only one
        resolution = "replace" if intent.op == "replace" and not spec.functional else None
        self._add(t, role, want, conflicts, forced=resolution)

    def _add(self, t: Triple, role: str, want: dict[Triple, bool], conflicts: list[Conflict],
             forced: str | None = None) -> None:
        self._set(t, True, want)
        mirror_rel = self.schema.mirror(t.relation)
        facts = [t] + ([Triple(t.object, mirror_rel, t.subject)] if mirror_rel else [])
        for x in facts:
            spec = self.schema.relations[x.relation]
            if not (spec.functional or (forced and x is t)):
                continue
            for old in self._objects(x.subject, x.relation, want):
                if old == x.object:
                    continue
                old_t = Triple(x.subject, x.relation, old)
                kind = "functional" if x is t else "inverse_functional"
                base = t.relation if x is t else x.relation
                resolution = forced or self.policy.resolve(base, role)
                why = (f"{spec.id} has one value and {self._fmt(old_t)} holds"
                       if spec.functional else f"`replace` makes {self._fmt(t)} the only {spec.id}")
                if x is not t:
                    why += f" (through the {'symmetric' if spec.symmetric else 'inverse'} fact {self._fmt(x)})"
                conflicts.append(Conflict(kind, old_t, why, resolution, caused_by=t))
                self._set(old_t, False, want)

    # -- helpers -------------------------------------------------------------------------------
    def _set(self, t: Triple, present: bool, want: dict[Triple, bool]) -> None:
        want[t] = present
        mirror = self.schema.mirror(t.relation) if t.relation in self.schema.relations else None
        if mirror:
            want[Triple(t.object, mirror, t.subject)] = present

    def _has(self, t: Triple, want: dict[Triple, bool]) -> bool:
        return Overlay(self.store, want).has(t)

    def _objects(self, s: str, r: str, want: dict[Triple, bool]) -> list[str]:
        return Overlay(self.store, want).objects(s, r)

    def _entity(self, mention, allowed_types: Sequence[str], new_entities: dict[str, Entity], op: str) -> str:
        if mention.entity is not None:
            return mention.entity.id
        label = " ".join(mention.text.split())
        if op == "retract":
            raise OneEditError(f"No entity named {label!r} in the KG, so there is nothing to retract.",
                               hint="Check the name with `oneedit kg query`.")
        key = label.casefold()
        if key in new_entities:
            return new_entities[key].id
        etype = mention.new_type or (allowed_types[0] if len(allowed_types) == 1 else None)
        if etype is None or etype not in self.schema.types:
            raise OneEditError(f"{label!r} is not in the KG and its type cannot be told from the request.",
                               hint=f"Add it first: `oneedit kg add-entity` with one of {', '.join(allowed_types)}.")
        base = slugify(label) or "entity"
        eid, n = base, 2
        taken = {e.id for e in new_entities.values()}
        while eid in taken or self.store.entity(eid) is not None:
            eid, n = f"{base}_{n}", n + 1
        new_entities[key] = Entity(eid, etype, label)
        return eid

    def _fmt(self, t: Triple) -> str:
        return f"({self.kg.label(t.subject)}, {t.relation}, {self.kg.label(t.object)})"

    def _violations(self, want: dict[Triple, bool], requested: set[Triple]) -> list[Conflict]:
        out = []
        for v in self.kg.check(want):
            if v.kind in ("functional", "inverse_missing", "symmetric_missing"):
                continue  # resolved above; a leftover functional clash would be a planner bug
            if v.kind == "composite":
                continue  # reported per intent
            out.append(Conflict(v.kind, v.triple, v.message, "reject"))
        return out

    def _protected(self, want: dict[Triple, bool], role: str) -> list[Conflict]:
        if self.protected is None:
            return []
        removed = [t for t, present in want.items() if not present and not t.is_meta and self.store.contains(t)]
        hit = self.protected.which(removed) if removed else set()
        return [Conflict("protected", t, f"{self._fmt(t)} is protected by a curator; the edit would retract it. "
                         "A curator must unprotect it first.", "reject") for t in sorted(hit)]

    # -- augmentation --------------------------------------------------------------------------
    def _derived(self, want: dict[Triple, bool], diff: Diff) -> list[DerivedChange]:
        out: list[DerivedChange] = []
        # mirrors: list the non-primary direction of each changed pair as derived
        seen: set[Triple] = set()
        for op, facts in (("+", diff.added), ("-", diff.removed)):
            for t in facts:
                if t.is_meta or t in seen:
                    continue
                mirror = self.schema.mirror(t.relation)
                if not mirror:
                    continue
                m = Triple(t.object, mirror, t.subject)
                if m in facts:
                    seen.add(m)
                    out.append(DerivedChange(op, m, "symmetric" if self.schema.relations[t.relation].symmetric
                                             else "inverse", (t,)))
        after = Overlay(self.store, want)
        for spec in self.schema.composite_relations():
            for s in self._affected_subjects(spec, diff, after):
                before_facts = {d.triple: d for d in derive_from(s, spec, self.store.objects)}
                after_facts = {d.triple: d for d in derive_from(s, spec, after.objects)}
                for t in sorted(after_facts.keys() - before_facts.keys()):
                    out.append(DerivedChange("+", t, spec.id, after_facts[t].via))
                for t in sorted(before_facts.keys() - after_facts.keys()):
                    out.append(DerivedChange("-", t, spec.id, before_facts[t].via))
        return out

    def _affected_subjects(self, spec, diff: Diff, after: Overlay) -> set[str]:
        """Subjects whose rule path may pass through a changed fact: walk back from it."""
        subjects: set[str] = set()
        for t in (*diff.added, *diff.removed):
            if t.relation not in spec.rule:
                continue
            for k, step in enumerate(spec.rule):
                if step != t.relation:
                    continue
                nodes = {t.subject}
                for back in reversed(spec.rule[:k]):
                    nodes = {s for n in nodes for s in (*self.store.subjects(back, n), *after.subjects(back, n))}
                subjects |= nodes
        return subjects

    def _model_facts(self, diff: Diff, derived: Iterable[DerivedChange]) -> list[Triple]:
        """What the model must now say: the learnable facts the edit adds (stored and derived), and
        a *gap* (object :data:`~oneedit.core.GAP`) for each learnable slot it empties — a
        retraction without a replacement, which the model learns as "unknown"."""
        # the model learns the functional relations (one answer per prompt): see oneedit.knowledge
        learnable = {r.id for r in self.schema.relations.values() if r.functional}
        derived = list(derived)
        facts = [t for t in diff.added if t.relation in learnable]
        facts += [d.triple for d in derived if d.op == "+" and d.triple.relation in learnable
                  and d.triple not in facts]
        filled = {(t.subject, t.relation) for t in facts}
        removed = [t for t in diff.removed if t.relation in learnable]
        removed += [d.triple for d in derived if d.op == "-" and d.triple.relation in learnable]
        for slot in dict.fromkeys((t.subject, t.relation) for t in removed):
            if slot not in filled and not self._still_filled(*slot, diff):
                facts.append(Triple(slot[0], slot[1], GAP))
                filled.add(slot)
        return facts

    def _still_filled(self, subject: str, relation: str, diff: Diff) -> bool:
        """Whether the slot keeps a value the diff does not remove (a functional slot holds one
        value, but a KG may still carry a second until a person resolves it)."""
        spec = self.schema.relations[relation]
        if spec.composite:
            return False  # its value follows its base facts, whose own slots are judged above
        gone = set(diff.removed)
        return any(t not in gone for t in self.store.triples(subject, relation, None))


def _dedupe(conflicts: list[Conflict]) -> list[Conflict]:
    seen, out = set(), []
    for c in conflicts:
        key = (c.kind, c.fact, c.caused_by)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def require_choices(intent: EditIntent) -> None:
    """Raise :class:`AmbiguousRequest` (with the candidates) when a name in ``intent`` could be
    several entities: the person chooses, the planner never guesses."""
    if not intent.needs_choice:
        return
    role_name, m = next((r, m) for r, m in intent.mentions().items() if m.status == "ambiguous")
    opts = ", ".join(f"{c.entity.label} ({c.entity.id})" for c in m.candidates[:5])
    raise AmbiguousRequest(f"{m.text!r} could be several entities: {opts}.",
                           hint="Name it by id or with more detail, e.g. its full name.",
                           details={"mention": m.text, "role": role_name,
                                    "candidates": [c.entity.id for c in m.candidates],
                                    "options": [{"id": c.entity.id, "label": c.entity.label,
                                                 "description": c.entity.description, "type": c.entity.type}
                                                for c in m.candidates[:8]]})
