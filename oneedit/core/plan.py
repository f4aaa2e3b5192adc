"""Edit plans: what the controller decided a request means for the KG and the model.

The controller turns intents into an :class:`EditPlan` without changing anything: the conflicts it
found (each with why and the resolution chosen), the exact KG diff (base facts, their inverse and
symmetric mirrors, retracted conflicting facts, new entities), the facts derived through the
schema's rules that appear or stop holding, the checks run (safety, trust, plausibility), the facts
the model must learn, and a decision. The facade applies a plan as one transaction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from oneedit.core.types import Diff, Entity, Triple

Resolution = Literal["replace", "reject", "needs_review"]
RESOLUTIONS: tuple[str, ...] = ("replace", "reject", "needs_review")
Decision = Literal["apply", "reject", "needs_review", "noop"]


def triple_dict(t: Triple) -> dict:
    return {"subject": t.subject, "relation": t.relation, "object": t.object}


def triple_of(d: dict) -> Triple:
    return Triple(d["subject"], d["relation"], d["object"])


@dataclass(frozen=True, slots=True)
class Conflict:
    """A fact in the way of the edit (or a rule the edit breaks), why, and what happens to it.

    ``kind``: ``functional`` (the relation has one value and the fact holds another),
    ``inverse_functional`` (the same through the inverse or symmetric mirror), ``domain``/``range``
    (a type the relation does not accept), ``self_loop``, ``protected`` (the edit would change a
    fact a curator protected), ``composite`` (a derived relation cannot be edited directly),
    ``undefined_entity``, ``absent`` (a retraction of a fact the KG does not hold).
    """

    kind: str
    fact: Triple | None
    reason: str
    resolution: Resolution
    caused_by: Triple | None = None

    def to_dict(self) -> dict:
        return {"kind": self.kind, "fact": triple_dict(self.fact) if self.fact else None,
                "reason": self.reason, "resolution": self.resolution,
                "caused_by": triple_dict(self.caused_by) if self.caused_by else None}

    @classmethod
    def from_dict(cls, d: dict) -> Conflict:
        return cls(d["kind"], triple_of(d["fact"]) if d.get("fact") else None, d["reason"], d["resolution"],
                   triple_of(d["caused_by"]) if d.get("caused_by") else None)


@dataclass(frozen=True, slots=True)
class DerivedChange:
    """A fact that appears (``+``) or stops holding (``-``) because of the edit, with provenance:
    the rule (``inverse``, ``symmetric`` or a composite relation's id) and the base facts."""

    op: Literal["+", "-"]
    triple: Triple
    rule: str
    via: tuple[Triple, ...] = ()

    def to_dict(self) -> dict:
        return {"op": self.op, "fact": triple_dict(self.triple), "rule": self.rule,
                "via": [triple_dict(t) for t in self.via]}

    @classmethod
    def from_dict(cls, d: dict) -> DerivedChange:
        return cls(d["op"], triple_of(d["fact"]), d["rule"], tuple(triple_of(v) for v in d.get("via", ())))


@dataclass(frozen=True, slots=True)
class Check:
    """One check the controller ran: ``passed`` or not, and what it would do if not."""

    name: str
    passed: bool
    message: str = ""
    verdict: Decision | None = None  # when not passed: reject or needs_review
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"name": self.name, "passed": self.passed, "message": self.message}
        if self.verdict:
            out["verdict"] = self.verdict
        if self.details:
            out["details"] = self.details
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Check:
        return cls(d["name"], d["passed"], d.get("message", ""), d.get("verdict"), d.get("details") or {})


@dataclass(frozen=True, slots=True)
class EditPlan:
    """Everything an edit would change, decided before anything changes. Frozen: the Controller
    makes it whole (:meth:`decided`), and nothing after it changes what was decided."""

    requested: tuple[tuple[str, Triple], ...]     # (op, fact) as the intents asked, in ids
    diff: Diff                                    # exact KG diff: base facts, mirrors, retractions, new entities
    conflicts: tuple[Conflict, ...] = ()
    derived: tuple[DerivedChange, ...] = ()
    checks: tuple[Check, ...] = ()
    new_entities: tuple[Entity, ...] = ()
    model_facts: tuple[Triple, ...] = ()          # facts the model must now give
    decision: Decision = "apply"
    reasons: tuple[str, ...] = ()
    refused_by: str | None = None                 # the check or conflict kind that refused it
    base_revision: int | None = None              # the KG head the plan was made against

    def __post_init__(self) -> None:
        for name in ("requested", "conflicts", "derived", "checks", "new_entities", "model_facts", "reasons"):
            value = getattr(self, name)
            if not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    def but(self, **changes) -> EditPlan:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def with_checks(self, *checks: Check) -> EditPlan:
        """This plan with more checks run, decided again."""
        return self.but(checks=self.checks + checks).decided()

    def decided(self) -> EditPlan:
        """This plan with ``decision`` set from its conflicts and checks (reject > needs_review >
        apply/noop)."""
        rejects = [(c.kind, c.reason) for c in self.conflicts if c.resolution == "reject"]
        rejects += [(c.name, c.message) for c in self.checks if not c.passed and c.verdict == "reject"]
        reviews = [(c.kind, c.reason) for c in self.conflicts if c.resolution == "needs_review"]
        reviews += [(c.name, c.message) for c in self.checks if not c.passed and c.verdict == "needs_review"]
        if rejects:
            return self.but(decision="reject", refused_by=rejects[0][0], reasons=tuple(r for _, r in rejects))
        if reviews:
            return self.but(decision="needs_review", refused_by=reviews[0][0], reasons=tuple(r for _, r in reviews))
        if not self.diff:
            return self.but(decision="noop", refused_by=None, reasons=("The KG already holds this; nothing to change.",))
        return self.but(decision="apply", refused_by=None, reasons=())

    def to_dict(self) -> dict:
        return {
            "decision": self.decision,
            "reasons": list(self.reasons),
            "refused_by": self.refused_by,
            "requested": [{"op": op, **triple_dict(t)} for op, t in self.requested],
            "conflicts": [c.to_dict() for c in self.conflicts],
            "kg_diff": {"added": [triple_dict(t) for t in self.diff.added],
                        "removed": [triple_dict(t) for t in self.diff.removed]},
            "derived": [d.to_dict() for d in self.derived],
            "new_entities": [{"id": e.id, "type": e.type, "label": e.label} for e in self.new_entities],
            "model_facts": [triple_dict(t) for t in self.model_facts],
            "checks": [c.to_dict() for c in self.checks],
            "base_revision": self.base_revision,
        }

    @classmethod
    def from_dict(cls, d: dict) -> EditPlan:
        diff = Diff(tuple(triple_of(t) for t in d["kg_diff"]["added"]),
                    tuple(triple_of(t) for t in d["kg_diff"]["removed"]))
        return cls(
            requested=[(r["op"], triple_of(r)) for r in d["requested"]],
            diff=diff,
            conflicts=[Conflict.from_dict(c) for c in d.get("conflicts", [])],
            derived=[DerivedChange.from_dict(x) for x in d.get("derived", [])],
            checks=[Check.from_dict(c) for c in d.get("checks", [])],
            new_entities=[Entity(e["id"], e["type"], e["label"]) for e in d.get("new_entities", [])],
            model_facts=[triple_of(t) for t in d.get("model_facts", [])],
            decision=d.get("decision", "apply"), reasons=list(d.get("reasons", [])),
            refused_by=d.get("refused_by"), base_revision=d.get("base_revision"))
