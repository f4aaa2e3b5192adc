"""The Controller as one stage: intents in, a decided :class:`~oneedit.core.plan.EditPlan` out.

:meth:`Controller.decide` owns every check an edit passes before anything changes — the planner
(conflicts, resolution policy, inverse and multi-hop consequences, protected facts, the facts the
model must learn), the safety checks (classifier, profanity lexicon, moderator) and the author's
trust — and makes the one decision (apply, reject, needs_review, noop). The facade only carries
the decision out.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.planner import Planner, ResolutionPolicy
from controller.safety import SafetyChecker
from controller.users import TrustPolicy, User, UserStore
from oneedit.core import EditIntent, Mention, OneEditError
from oneedit.core.plan import Check, EditPlan


class Controller:
    def __init__(self, kg, *, policy: ResolutionPolicy, protected, safety: SafetyChecker, users: UserStore,
                 trust: TrustPolicy):
        self.kg = kg
        self.policy = policy
        self.protected = protected
        self.safety = safety
        self.users = users
        self.trust = trust

    def planner(self) -> Planner:
        return Planner(self.kg, policy=self.policy, protected=self.protected)

    def decide(self, intents: Sequence[EditIntent], actor: User, text: str = "") -> EditPlan:
        """The plan for ``intents`` by ``actor`` (``text``: the request as written): conflicts, KG
        diff, derived facts, the model's facts, safety and trust checks, and the decision."""
        plan = self.planner().plan(intents, role=actor.role)
        labels = [e.label for e in plan.new_entities]
        # the KG's own names are not abuse: those the request mentions are masked for the checks
        known = {n for i in intents for mention in i.mentions().values() if mention.entity is not None
                 for n in mention.entity.names()}
        findings = self.safety.check(text, labels, known=known)
        checks = [Check(f.check, False, f.message, "reject" if f.verdict == "reject" else "needs_review",
                        {"score": f.score, "text": f.text} if f.score is not None else {"text": f.text})
                  for f in findings]
        if not findings:
            checks.append(Check("toxicity", True, "no toxic or abusive language found"))
        if self.users.needs_review(actor):
            checks.append(Check("trust", False, f"{actor.name}'s trust {actor.trust:.2f} is below "
                                f"{self.trust.review_below:.2f}: a curator reviews their edits", "needs_review"))
        else:
            checks.append(Check("trust", True, f"trust {actor.trust:.2f}"))
        return plan.with_checks(*checks)

    def reconsider(self, plan: EditPlan, reviewer: User) -> EditPlan:
        """A plan waiting for review, planned again against today's KG as ``reviewer`` approves it
        (the KG may have changed since; the curator's approval stands in for the trust check)."""
        again = self.planner().plan(intents_from_plan(self.kg, plan), role=reviewer.role)
        return again.with_checks(Check("review", True, f"approved by {reviewer.name}"))


def safety_from_policy(policy) -> SafetyChecker:
    """The safety checks a workspace's policy asks for: the classifier (``toxicity``), the profanity
    lexicon (``toxicity.lexicon``) and an LLM moderator (``moderator``)."""
    from controller.safety import ChatModerator, ToxicityCheck

    cfg = dict(policy.toxicity)
    enabled = cfg.pop("enabled", True)
    lexicon = "default" if cfg.pop("lexicon", True) else None
    moderator = None
    if policy.moderator:
        from interpreter.llm import chat_model_from_spec

        moderator = ChatModerator(chat_model_from_spec(policy.moderator))
    return SafetyChecker(ToxicityCheck(**cfg) if enabled else None, moderator, lexicon=lexicon)


def intents_from_plan(kg, plan: EditPlan) -> list[EditIntent]:
    """Intents that re-create a stored plan's request (for approval after review)."""
    new = {e.id: e for e in plan.new_entities}

    def mention(eid: str) -> Mention:
        if eid in new and kg.store.entity(eid) is None:
            return Mention(new[eid].label, new_type=new[eid].type)
        e = kg.store.entity(eid)
        if e is None:
            raise OneEditError(f"Entity {eid!r} of this edit is no longer in the KG.")
        return Mention(e.label, entity=e, confidence=1.0)

    return [EditIntent(op, mention(t.subject), t.relation, mention(t.object)) for op, t in plan.requested]

