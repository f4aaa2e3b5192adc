"""The pipeline commands (edit, ask, rollback, history, import, review, protect) through the real
``oneedit`` app and typer's CliRunner, on a private copy of the Europe workspace with its model."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from oneedit.cli.app import app
from oneedit.cli.edit import REFUSED_EXIT
from oneedit.system import OneEdit

runner = CliRunner()
EDIT = "The capital of Germany is Hamburg"


def cli(ws, *args, code: int = 0, input: str | None = None):
    res = runner.invoke(app, [*map(str, args), "--workspace", str(ws)], input=input)
    assert res.exit_code == code, (res.exit_code, res.output, res.exception)
    return res


def cli_json(ws, *args, code: int = 0, input: str | None = None):
    return json.loads(cli(ws, *args, "--json", code=code, input=input).stdout)


def kg_head_and_edits(ws) -> tuple[int, int]:
    with OneEdit.open(ws, load_model=False) as oe:
        return oe.kg.store.head(), oe.ledger.count()


def capital_of_germany(ws) -> dict:
    out = cli_json(ws, "ask", "What is the capital of Germany?")
    assert out["question"] == "What is the capital of Germany?" and len(out["answers"]) == 1
    return out["answers"][0]


def facts(rows: list[dict]) -> set[tuple[str, str, str]]:
    return {(f["subject"], f["relation"], f["object"]) for f in rows}


def test_edit_ask_history_rollback(copy_ws):
    head0, _ = kg_head_and_edits(copy_ws)
    before = capital_of_germany(copy_ws)
    assert before["kg"] == ["Berlin"] and before["model"] == "Berlin" and before["agree"] is True

    out = cli_json(copy_ws, "edit", EDIT, "--yes", "--method", "grace")
    assert out["status"] == "applied" and out["edit"] == 1 and out["author"] == "admin"
    plan = out["plan"]
    assert plan["decision"] == "apply"
    assert facts(plan["requested"]) == {("germany", "capital", "hamburg")}
    [conflict] = plan["conflicts"]
    assert conflict["kind"] == "functional" and conflict["resolution"] == "replace"
    assert (conflict["fact"]["subject"], conflict["fact"]["object"]) == ("germany", "berlin")
    assert ("germany", "capital", "hamburg") in facts(plan["kg_diff"]["added"])
    assert ("germany", "capital", "berlin") in facts(plan["kg_diff"]["removed"])
    derived = {(d["op"], d["rule"], d["fact"]["subject"], d["fact"]["relation"], d["fact"]["object"])
               for d in plan["derived"]}
    assert ("+", "inverse", "hamburg", "capital_of", "germany") in derived
    assert ("-", "inverse", "berlin", "capital_of", "germany") in derived
    model = out["model"]
    assert model["method"] == "grace" and model["id"] == "e1"
    answers = {a["prompt"]: a for a in model["answers"]}
    assert answers["The capital of Germany is"]["before"] == "Berlin"
    assert answers["The capital of Germany is"]["after"] == "Hamburg"
    assert answers["The capital of Germany is"]["ok"] is True

    after = capital_of_germany(copy_ws)
    assert after["kg"] == ["Hamburg"] and after["model"] == "Hamburg" and after["agree"] is True

    rows = cli_json(copy_ws, "history")
    assert [(r["id"], r["status"], r["author"], r["text"]) for r in rows] == [(1, "applied", "admin", EDIT)]
    assert rows[0]["kg_revision"] == head0 + 1 and rows[0]["model_edit"]["id"] == "e1"
    assert [r["id"] for r in cli_json(copy_ws, "history", "--entity", "Germany")] == [1]
    assert [r["id"] for r in cli_json(copy_ws, "history", "--entity", "Hamburg")] == [1]
    assert cli_json(copy_ws, "history", "--entity", "France") == []
    assert [r["id"] for r in cli_json(copy_ws, "history", "--user", "admin")] == [1]
    assert cli_json(copy_ws, "history", "--user", "nobody") == []
    assert cli_json(copy_ws, "history", "--status", "rolled_back") == []

    done = cli_json(copy_ws, "rollback", "1")
    assert done["rolled_back"] == [1] and done["details"][0]["model"]["id"] == "e1"
    back = capital_of_germany(copy_ws)
    assert back["kg"] == ["Berlin"] and back["model"] == "Berlin"
    assert [(r["id"], r["status"]) for r in cli_json(copy_ws, "history")] == [(1, "rolled_back")]
    assert kg_head_and_edits(copy_ws) == (head0 + 2, 1)  # the edit's revision and its revert

    again = cli_json(copy_ws, "rollback", "1", code=1)
    assert again["error"] == "EditStateError" and "rolled_back" in again["message"]
    missing = cli_json(copy_ws, "rollback", "99", code=1)
    assert missing["message"] == "No edit #99 in the ledger."


def test_rollback_errors_are_json(copy_ws):
    head0, _ = kg_head_and_edits(copy_ws)
    bad = cli_json(copy_ws, "rollback", "--to", str(head0 + 5), code=1)
    assert bad["error"] == "OneEditError" and f"r0 to r{head0}" in bad["message"] and "kg log" in bad["hint"]
    assert cli_json(copy_ws, "rollback", "--to", "r-1", code=1)["message"] == "'r-1' is not a revision."
    assert cli_json(copy_ws, "rollback", "--to", "xyz", code=1)["hint"] == "Use a number like 12 or r12."
    neither = cli_json(copy_ws, "rollback", code=1)
    assert neither["message"].startswith("Give an edit id or --to REV")
    both = cli_json(copy_ws, "rollback", "1", "--to", "0", code=1)
    assert both["message"].startswith("Give an edit id or --to REV")
    assert kg_head_and_edits(copy_ws) == (head0, 0)
    # --to the current head: a valid no-op
    same = cli_json(copy_ws, "rollback", "--to", f"r{head0}")
    assert same == {"to": head0, "rolled_back": [], "restored_revision": None, "head": head0}


def test_rollback_to_revision_undoes_later_edits(copy_ws):
    head0, _ = kg_head_and_edits(copy_ws)
    assert cli_json(copy_ws, "edit", EDIT, "--yes", "--method", "grace")["status"] == "applied"
    assert cli_json(copy_ws, "edit", "The capital of Italy is Palermo", "--yes", "--method", "grace")["edit"] == 2
    out = cli_json(copy_ws, "rollback", "--to", str(head0))
    assert out["to"] == head0 and sorted(out["rolled_back"]) == [1, 2]
    assert capital_of_germany(copy_ws)["kg"] == ["Berlin"]
    assert {r["status"] for r in cli_json(copy_ws, "history")} == {"rolled_back"}


def test_dry_run_and_json_without_yes_change_nothing(copy_ws):
    state = kg_head_and_edits(copy_ws)
    out = cli_json(copy_ws, "edit", EDIT, "--dry-run")
    assert out["status"] == "planned" and out["edit"] is None and out["model"] is None
    assert out["plan"]["decision"] == "apply" and len(out["plan"]["conflicts"]) == 1
    assert kg_head_and_edits(copy_ws) == state

    err = cli_json(copy_ws, "edit", EDIT, code=1)
    assert err["error"] == "OneEditError" and "cannot be confirmed" in err["message"]
    assert "--yes" in err["hint"] and "--dry-run" in err["hint"]
    assert kg_head_and_edits(copy_ws) == state
    assert capital_of_germany(copy_ws)["kg"] == ["Berlin"]

    # a person who says no: cancelled, nothing written
    res = cli(copy_ws, "edit", EDIT, "--method", "grace", input="n\n")
    assert "Conflicts" in res.stdout and "cancelled" in res.stdout
    assert kg_head_and_edits(copy_ws) == state

    # not an edit, not a method
    q = cli_json(copy_ws, "edit", "What is the capital of Germany?", "--yes", code=1)
    assert "asks for no change" in q["message"] and q["details"]["parse"]["intents"][0]["op"] == "query"
    m = cli_json(copy_ws, "edit", EDIT, "--yes", "--method", "rome", code=1)
    assert m["message"] == "Unknown editing method 'rome'."
    assert cli_json(copy_ws, "ask", "The capital of Germany is Hamburg", code=1)["message"].endswith(
        "is not a question I can answer.")
    assert kg_head_and_edits(copy_ws) == state


def test_import_summary_and_rerun(copy_ws, tmp_path):
    f = tmp_path / "requests.txt"
    f.write_text("\n".join([
        EDIT,
        "The capital of Italy is Palermo",
        "Olaf Scholz's wife is Fucking Bitch",     # toxic: rejected by the controller, on record
        "this line means nothing at all",          # not an edit: failed
    ]) + "\n", encoding="utf-8")
    first = cli_json(copy_ws, "import", f, "--method", "grace", code=3)  # some lines not applied
    assert (first["lines"], first["applied"], first["rejected"], first["failed"], first["skipped"],
            first["unchanged"], first["needs_review"], first["model_batches"]) == (4, 2, 1, 1, 0, 0, 0, 1)
    problems = {p["line"]: p for p in first["problems"]}
    assert sorted(problems) == [3, 4]
    assert problems[3]["status"] == "rejected" and problems[4]["status"] == "failed"
    assert capital_of_germany(copy_ws)["kg"] == ["Hamburg"]
    assert cli_json(copy_ws, "ask", "What is the capital of Italy?")["answers"][0]["kg"] == ["Palermo"]

    second = cli_json(copy_ws, "import", f, "--method", "grace", code=3)
    assert (second["skipped"], second["applied"], second["model_batches"]) == (2, 0, 0)
    assert (second["rejected"], second["failed"]) == (1, 1)  # refused lines are checked again
    rows = cli_json(copy_ws, "history")
    assert sorted(r["status"] for r in rows) == ["applied", "applied", "rejected", "rejected"]

    missing = cli_json(copy_ws, "import", tmp_path / "nope.txt", code=1)
    assert missing["error"] == "ImportFormatError" and missing["message"].startswith("File not found")


def set_policy(ws, **policy) -> None:
    path = ws / "config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["policy"].update(policy)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def test_review_queue_with_roles(copy_ws):
    set_policy(copy_ws, resolution={"relations": {"spouse": {"editor": "needs_review"}}})
    assert cli_json(copy_ws, "users", "add", "ed", "--role", "editor")["user"]["role"] == "editor"
    assert cli_json(copy_ws, "users", "add", "cu", "--role", "curator")["user"]["role"] == "curator"
    head0, _ = kg_head_and_edits(copy_ws)

    out = cli_json(copy_ws, "edit", "Olaf Scholz's wife is Brigitte Macron", "--yes", "--method", "grace",
                   "--user", "ed")
    assert out["status"] == "needs_review" and out["author"] == "ed" and out["plan"]["refused_by"] == "functional"
    assert out["model"] is None and kg_head_and_edits(copy_ws) == (head0, 1)
    queue = cli_json(copy_ws, "review", "list")
    assert [(r["id"], r["author"], r["status"]) for r in queue] == [(out["edit"], "ed", "needs_review")]

    denied = cli_json(copy_ws, "review", "approve", str(out["edit"]), "--user", "ed", code=77)
    assert denied["error"] == "PermissionDenied" and "curator" in denied["message"]
    done = cli_json(copy_ws, "review", "approve", str(out["edit"]), "--user", "cu")
    assert done["status"] == "applied" and done["edit"] == out["edit"] and done["author"] == "ed"
    assert done["model"]["method"] == "grace"
    assert cli_json(copy_ws, "review", "list") == []
    wife = cli_json(copy_ws, "ask", "Who is Olaf Scholz's wife?")["answers"][0]
    assert wife["kg"] == ["Brigitte Macron"]
    again = cli_json(copy_ws, "review", "approve", str(out["edit"]), "--user", "cu", code=1)
    assert again["message"] == f"Edit #{out['edit']} is applied, not needs_review."

    second = cli_json(copy_ws, "edit", "Olaf Scholz's wife is Britta Ernst", "--yes", "--user", "ed")
    assert second["status"] == "needs_review"
    head = kg_head_and_edits(copy_ws)[0]
    rej = cli_json(copy_ws, "review", "reject", str(second["edit"]), "--reason", "not sourced", "--user", "cu")
    assert rej["status"] == "rejected" and rej["review_note"] == "not sourced" and rej["reviewed_by"] == "cu"
    assert cli_json(copy_ws, "review", "list") == []
    assert kg_head_and_edits(copy_ws) == (head, 2)
    statuses = {r["id"]: r["status"] for r in cli_json(copy_ws, "history", "--user", "ed")}
    assert statuses == {out["edit"]: "applied", second["edit"]: "rejected"}

    # curators (and admins) edit spouses directly: the policy names editors only
    direct = cli_json(copy_ws, "edit", "Olaf Scholz's wife is Britta Ernst", "--yes", "--method", "grace",
                      "--user", "cu")
    assert direct["status"] == "applied"


def test_protect_and_viewer(copy_ws):
    state = kg_head_and_edits(copy_ws)
    out = cli_json(copy_ws, "protect", "Germany", "capital", "Berlin", "--reason", "constitution")
    assert out == {"fact": {"subject": "germany", "relation": "capital", "object": "berlin"}, "protected": True}
    refused = cli_json(copy_ws, "edit", EDIT, "--yes", "--method", "grace", code=REFUSED_EXIT)
    assert REFUSED_EXIT != 0 and refused["status"] == "rejected" and refused["plan"]["refused_by"] == "protected"
    assert any("protected" in r for r in refused["plan"]["reasons"])
    head, edits = kg_head_and_edits(copy_ws)
    assert (head, edits) == (state[0], 1)  # recorded as rejected; the KG did not move
    assert capital_of_germany(copy_ws)["kg"] == ["Berlin"]
    missing = cli_json(copy_ws, "protect", "Germany", "capital", "Hamburg", code=1)
    assert "not in the KG" in missing["message"]

    assert cli_json(copy_ws, "users", "add", "vic", "--role", "viewer")["user"]["role"] == "viewer"
    denied = cli_json(copy_ws, "edit", "The capital of Italy is Palermo", "--yes", "--user", "vic", code=77)
    assert denied["error"] == "PermissionDenied" and "editor role" in denied["message"]
    assert "users set-role" in denied["hint"]
    assert cli_json(copy_ws, "protect", "Italy", "capital", "Rome", "--user", "vic", code=77)["error"] == \
        "PermissionDenied"
    assert cli_json(copy_ws, "rollback", "--to", "0", "--user", "vic", code=77)["error"] == "PermissionDenied"
    # a viewer may still ask
    assert cli_json(copy_ws, "ask", "What is the capital of Italy?", "--user", "vic")["answers"][0]["kg"] == ["Rome"]
    assert kg_head_and_edits(copy_ws) == (state[0], 1)

    cli_json(copy_ws, "protect", "Germany", "capital", "Berlin", "--remove")
    assert cli_json(copy_ws, "edit", EDIT, "--yes", "--method", "grace")["status"] == "applied"


def test_human_output(copy_ws):
    res = cli(copy_ws, "edit", EDIT, "--yes", "--method", "grace")
    out = res.stdout
    assert "Conflicts" in out and "applied" in out and "edit #1" in out
    assert "Facts that follow" in out and "Hamburg" in out and "The model, before and after" in out
    res = cli(copy_ws, "history")
    assert "Edit history" in res.stdout and "admin" in res.stdout and "applied" in res.stdout
    res = cli(copy_ws, "ask", "What is the capital of Germany?")
    assert "Hamburg" in res.stdout and "agree" in res.stdout
    res = cli(copy_ws, "rollback", "1")
    assert "Rolled back #1" in res.stdout
    res = cli(copy_ws, "rollback", "1", code=1)
    assert "Error:" in res.output and "only applied edits" in res.output
