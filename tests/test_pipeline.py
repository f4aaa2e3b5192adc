"""End to end through the facade: text → plan → KG revision + model edit → ledger, and back.

Real parts only: the embedded store, the SQLite ledger and user table, the interpreter, and the
test knowledge model (a small GPT-2 trained on the Europe subset of the shipped KG).
"""

from __future__ import annotations

import pytest

from oneedit.core import OneEditError, Triple, TypeClashError
from oneedit.system import DependentEdits, OneEdit
from oneedit.workspace import Workspace
from tests.repair_support import own_model_edits

CAPITAL_PROMPTS = ("The capital of Germany is", "Hamburg is the capital of")


def open_oe(root, **policy) -> OneEdit:
    ws = Workspace.open(root)
    for key, value in policy.items():
        setattr(ws.config.policy, key, value)
    oe = OneEdit(ws)
    oe.recover()
    return oe


def say(oe: OneEdit, text: str) -> str:
    from editor.verbalize import Prompt

    return oe.sync.answers([("train", Prompt(text, "", ""))])[0]


def kg_state(oe: OneEdit) -> set[Triple]:
    return set(oe.kg.store.triples())


def test_edit_changes_both_sides_and_rollback_restores_both(copy_ws):
    with open_oe(copy_ws) as oe:
        triples0 = kg_state(oe)
        before = {p: say(oe, p) for p in CAPITAL_PROMPTS}
        assert before["The capital of Germany is"] == "Berlin"
        out = oe.submit("The capital of Germany is Hamburg", method="memit")
        assert out.status == "applied" and out.edit == 1
        # the KG: the new capital, its inverse, the old capital retracted
        assert oe.kg.store.objects("germany", "capital") == ["hamburg"]
        assert oe.kg.store.objects("hamburg", "capital_of") == ["germany"]
        assert oe.kg.store.objects("berlin", "capital_of") == []
        # the model: the edit prompt and the inverse prompt follow the edit
        answers = {a["prompt"]: a for a in out.model["answers"]}
        assert answers["The capital of Germany is"]["after"] == "Hamburg"
        assert answers["Hamburg is the capital of"]["after"] == "Germany"
        assert say(oe, "The capital of Germany is") == "Hamburg"
        asked = oe.ask("What is the capital of Germany?")[0]
        assert asked["kg"] == ["Hamburg"] and asked["model"] == "Hamburg" and asked["agree"] is True
        entry = oe.ledger.get(1)
        assert entry.status == "applied" and entry.author == "admin"
        assert entry.record.model_edit.id == "e1"
        assert entry.kg_revision == oe.kg.store.head()
        assert "e1" in oe.model.edit_ids()

        result = oe.rollback(1)
        assert result["rolled_back"] == [1]
        assert kg_state(oe) == triples0
        assert own_model_edits(oe) == []
        assert {p: say(oe, p) for p in CAPITAL_PROMPTS} == before
        assert oe.ledger.get(1).status == "rolled_back"
        assert oe.ledger.get(1).record.rollback["by"] == "admin"
    # a restart lands in the same state
    with open_oe(copy_ws) as oe:
        assert kg_state(oe) == triples0 and own_model_edits(oe) == []


def test_multi_hop_edit_writes_derived_facts_into_the_model(copy_ws):
    with open_oe(copy_ws) as oe:
        out = oe.submit("Olaf Scholz's wife is Brigitte Macron", method="memit")
        assert out.status == "applied"
        derived = {(d["op"], d["fact"]["subject"], d["fact"]["relation"], d["fact"]["object"])
                   for d in out.to_dict()["plan"]["derived"]}
        assert ("-", "france", "head_of_state_spouse", "brigitte_macron") in derived
        facts = {tuple(f) for f in out.model["facts"]}
        assert ("olaf_scholz", "spouse", "brigitte_macron") in facts
        assert ("brigitte_macron", "spouse", "olaf_scholz") in facts
        # Germany's head of government is not a head of state, so head_of_state_spouse stays put;
        # the spouse facts hold in the model
        train = [a for a in out.model["answers"] if a["split"] == "train"]
        assert {("olaf_scholz", "spouse", "brigitte_macron"), ("brigitte_macron", "spouse", "olaf_scholz")} \
            <= {tuple(a["fact"]) for a in train}, out.model["answers"]
        assert all(a["ok"] for a in train), out.model["answers"]
        oe.rollback(out.edit)
        assert oe.kg.store.objects("olaf_scholz", "spouse") == ["britta_ernst"]


def test_refused_edit_leaves_nothing(copy_ws):
    with open_oe(copy_ws) as oe:
        head, n, rows = oe.kg.store.head(), oe.kg.store.count(), oe.ledger.count()
        with pytest.raises(TypeClashError, match="'Olaf Scholz' is a Person"):  # refused as read
            oe.submit("The capital of Germany is Olaf Scholz", method="memit")
        assert (oe.kg.store.head(), oe.kg.store.count(), oe.ledger.count()) == (head, n, rows)
        # the same fact given as a triple (an API or CSV caller) is refused by the controller, on record
        intents = oe.intake.from_triples([{"subject": "germany", "relation": "capital", "object": "olaf_scholz"}])
        out = oe.submit(intents=intents, method="memit")
        assert out.status == "rejected" and out.plan.refused_by == "range"
        entry = oe.ledger.get(out.edit)
        assert entry.status == "rejected" and entry.record.plan.refused_by == "range"
        assert entry.kg_revision is None and entry.record.model_edit is None
        assert (oe.kg.store.head(), oe.kg.store.count()) == (head, n)
        assert own_model_edits(oe) == []


def test_toxic_edit_is_refused_and_recorded(copy_ws):
    with open_oe(copy_ws) as oe:
        head = oe.kg.store.head()
        out = oe.submit("Olaf Scholz's wife is Fucking Bitch", method="memit")
        assert out.status == "rejected"
        assert out.plan.refused_by in ("toxicity", "moderator")
        assert oe.kg.store.head() == head and own_model_edits(oe) == []
        entry = oe.ledger.get(out.edit)
        assert entry.status == "rejected"
        failed = [c for c in entry.record.plan.checks if not c.passed]
        assert failed and failed[0].name == "toxicity"
        assert oe.users.get("admin").trust < 0.5  # a rejected edit lowers its author's trust


def test_roles_are_enforced(copy_ws):
    from oneedit.core import PermissionDenied

    with open_oe(copy_ws) as oe:
        oe.users.add("vic", "viewer")
        oe.users.add("ed", "editor")
        oe.users.add("eve", "editor")
        oe.users.add("cu", "curator")
        with pytest.raises(PermissionDenied, match="editor"):
            oe.submit("The capital of Germany is Hamburg", user="vic")
        out = oe.submit("The capital of Germany is Hamburg", user="ed", method="grace")
        assert out.status == "applied" and oe.ledger.get(out.edit).author == "ed"
        with pytest.raises(PermissionDenied, match="only their own"):
            oe.rollback(out.edit, user="eve")
        assert oe.users.get("ed").trust > 0.5
        oe.rollback(out.edit, user="cu")
        assert oe.ledger.get(out.edit).record.rollback["by"] == "cu"
        assert oe.users.get("ed").trust < 0.52  # rolled back by someone else: trust goes down
        assert oe.history(user="ed")[0]["id"] == out.edit
        assert [h["id"] for h in oe.history(entity="Germany")] == [out.edit]


def test_review_queue_approve_and_reject(copy_ws):
    with open_oe(copy_ws, resolution={"relations": {"spouse": {"editor": "needs_review"}}}) as oe:
        oe.users.add("ed", "editor")
        oe.users.add("cu", "curator")
        head = oe.kg.store.head()
        out = oe.submit("Olaf Scholz's wife is Brigitte Macron", user="ed", method="grace")
        assert out.status == "needs_review"
        assert oe.kg.store.head() == head and own_model_edits(oe) == []
        assert [r["id"] for r in oe.review.queue()] == [out.edit]
        from oneedit.core import PermissionDenied

        with pytest.raises(PermissionDenied):
            oe.approve(out.edit, user="ed")
        done = oe.approve(out.edit, user="cu")
        assert done.status == "applied"
        entry = oe.ledger.get(out.edit)
        assert entry.status == "applied" and entry.author == "ed" and entry.record.reviewed_by == "cu"
        assert oe.kg.store.objects("olaf_scholz", "spouse") == ["brigitte_macron"]
        assert f"e{out.edit}" in oe.model.edit_ids()

        second = oe.submit("Olaf Scholz's wife is Britta Ernst", user="ed", method="grace")
        assert second.status == "needs_review"
        head = oe.kg.store.head()
        oe.reject(second.edit, user="cu", reason="not sourced")
        assert oe.ledger.get(second.edit).status == "rejected"
        assert oe.kg.store.head() == head
        with pytest.raises(OneEditError, match="is rejected"):
            oe.approve(second.edit, user="cu")


def test_low_trust_users_go_to_review(copy_ws):
    with open_oe(copy_ws, trust={"initial": 0.2, "review_below": 0.3}) as oe:
        oe.users.add("newbie", "editor")
        out = oe.submit("The capital of Germany is Hamburg", user="newbie")
        assert out.status == "needs_review" and out.plan.refused_by == "trust"


def test_rate_limit_per_user(copy_ws):
    from oneedit.core import RateLimitError

    with open_oe(copy_ws, rate_limit={"editor": 2}) as oe:
        oe.users.add("ed", "editor")
        for text in ("Olaf Scholz's wife is Britta Ernst Scholz", "Olaf Scholz's wife is Fucking Bitch"):
            oe.submit(text, user="ed", method="grace")
        n = oe.ledger.count()
        with pytest.raises(RateLimitError):
            oe.submit("The capital of Germany is Hamburg", user="ed")
        assert oe.ledger.count() == n


def test_dependent_edits_refuse_rollback_unless_cascade(copy_ws):
    with open_oe(copy_ws) as oe:
        triples0 = kg_state(oe)
        first = oe.submit("The capital of Germany is Hamburg", method="grace")
        second = oe.submit("The capital of Germany is Detmold", method="grace")
        other = oe.submit("Olaf Scholz's wife is Brigitte Macron", method="grace")
        assert (first.status, second.status, other.status) == ("applied",) * 3
        assert oe.rollbacks.dependents(first.edit) == [second.edit]
        with pytest.raises(DependentEdits) as err:
            oe.rollback(first.edit)
        assert err.value.details["dependents"] == [second.edit]
        assert oe.ledger.get(first.edit).status == "applied"  # nothing happened
        result = oe.rollback(first.edit, cascade=True)
        assert result["rolled_back"] == [second.edit, first.edit]
        assert oe.kg.store.objects("germany", "capital") == ["berlin"]
        assert say(oe, "The capital of Germany is") == "Berlin"
        assert oe.ledger.get(other.edit).status == "applied"
        oe.rollback(other.edit)
        assert kg_state(oe) == triples0


def test_rollback_to_revision(copy_ws):
    with open_oe(copy_ws) as oe:
        triples0, head0 = kg_state(oe), oe.kg.store.head()
        oe.submit("The capital of Germany is Hamburg", method="grace")
        oe.kg.remove_fact("olaf_scholz", "citizen_of", "germany", author="admin")  # a change outside any edit
        oe.submit("Olaf Scholz's wife is Brigitte Macron", method="grace")
        result = oe.rollback_to(head0)
        assert len(result["rolled_back"]) == 2
        assert kg_state(oe) == triples0
        assert own_model_edits(oe) == []
        assert say(oe, "The capital of Germany is") == "Berlin"


def test_import_batches_model_edits_and_skips_applied_lines(copy_ws, tmp_path):
    f = tmp_path / "facts.txt"
    f.write_text("\n".join([
        "The capital of Germany is Hamburg",
        "Olaf Scholz's wife is Brigitte Macron",
        "The capital of Germany is Berlin",        # undoes line 1 within the batch
        "The capital of Italy is Palermo",
        "Olaf Scholz's wife is Fucking Bitch",     # toxic: rejected by the controller, on record
        "this line means nothing at all",          # not an edit: failed
        "The capital of France is Paris",          # already so: unchanged
    ]) + "\n", encoding="utf-8")
    with open_oe(copy_ws) as oe:
        summary = oe.import_file(f, batch_size=64)
        assert (summary["applied"], summary["rejected"], summary["failed"], summary["unchanged"]) == (4, 1, 1, 1)
        assert summary["model_batches"] == 1
        applied = oe.ledger.list(status="applied", limit=None)
        assert {e.record.model_edit.id for e in applied} == {"b1"}
        assert own_model_edits(oe) == ["b1"]
        # the batch wrote only the facts that hold at its end: Berlin, not Hamburg
        targets = {(r["subject"], r["target"].strip()) for r in oe.model.manifest[0]["requests"]}
        assert ("Germany", "Hamburg") not in targets and ("Italy", "Palermo") in targets
        assert say(oe, "The capital of Italy is") == "Palermo"
        assert oe.kg.store.objects("germany", "capital") == ["berlin"]
        again = oe.import_file(f, batch_size=64)
        assert again["skipped"] == 4 and again["applied"] == 0 and again["model_batches"] == 0
        # rolling back one line of the batch keeps the others in the model
        milan = next(e.id for e in applied if "Italy" in e.text)
        oe.rollback(milan)
        assert say(oe, "The capital of Italy is") == "Rome"
        assert oe.kg.store.objects("olaf_scholz", "spouse") == ["brigitte_macron"]
        rest = own_model_edits(oe)
        assert "b1" not in rest and len(rest) == 1
