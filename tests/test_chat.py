"""The chat: :class:`oneedit.cli.chat.ChatSession` turn by turn on a private copy of the Europe
workspace (real KG, ledger, interpreter and test model), and ``chat_command`` through CliRunner."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from oneedit.cli.chat import ChatSession, chat_command
from oneedit.cli.output import handle_errors
from oneedit.system import OneEdit
from tests.repair_support import own_model_edits

EDIT = "The capital of Germany is Hamburg"
QUEEN_EDIT = "The Queen's husband is Olaf Scholz"  # "the Queen": Camilla, Letizia or Máxima


class Person:
    """Stands in for the person at the keyboard: scripted answers, and what they were asked."""

    def __init__(self, *, pick: str | None = None, accept: bool = True):
        self.pick, self.accept = pick, accept
        self.choices: list[tuple[str, list[dict]]] = []
        self.plans: list[dict] = []

    def choose(self, mention: str, candidates: list[dict]) -> int | None:
        self.choices.append((mention, candidates))
        if self.pick is None:
            return None
        return [c["id"] for c in candidates].index(self.pick)

    def confirm(self, plan: dict) -> bool:
        self.plans.append(plan)
        return self.accept


@pytest.fixture
def oe(copy_ws):
    from oneedit.config import WorkspaceConfig

    cfg = WorkspaceConfig.load(copy_ws)
    cfg.consistency.repair = 0  # the conversation is tested here; self-repair in test_repair.py
    cfg.save(copy_ws)
    oe = OneEdit.open(copy_ws)
    yield oe
    oe.close()


def chat(oe, person: Person | None = None, **kw) -> ChatSession:
    person = person or Person()
    return ChatSession(oe, method="grace", choose=person.choose, confirm=person.confirm, **kw)


def types(events: list[dict]) -> list[str]:
    return [e["type"] for e in events]


def state(oe) -> tuple[int, int, list[str]]:
    return oe.kg.store.head(), oe.ledger.count(), oe.model.edit_ids()


def test_a_question_gets_the_kg_and_the_model_side_by_side(oe):
    events = chat(oe).handle("What is the capital of Germany?")
    assert types(events) == ["answer"]
    [a] = events[0]["answers"]
    assert (a["kind"], a["subject"], a["kg"], a["model"], a["agree"]) == ("value", "Germany", ["Berlin"], "Berlin", True)
    assert a["model_prompt"] == "The capital of Germany is"


def test_declined_conflict_changes_nothing(oe):
    person = Person(accept=False)
    before = state(oe)
    events = chat(oe, person).handle(EDIT)
    assert types(events) == ["plan", "outcome"]
    assert events[1]["outcome"]["status"] == "cancelled" and events[1]["outcome"]["edit"] is None
    assert events[0]["confirmed"] is False
    # the person was shown the plan with its conflict
    [plan] = person.plans
    [conflict] = plan["conflicts"]
    assert conflict["kind"] == "functional" and conflict["fact"]["object"] == "berlin"
    assert conflict["resolution"] == "replace"
    assert state(oe) == before == (before[0], 0, [])
    assert oe.kg.store.objects("germany", "capital") == ["berlin"]


def test_accepted_edit_then_history_and_undo(oe):
    person = Person(accept=True)
    s = chat(oe, person)
    head = oe.kg.store.head()
    events = s.handle(EDIT)
    assert types(events) == ["plan", "outcome"] and events[0]["confirmed"] is True
    out = events[1]["outcome"]
    assert (out["edit"], out["status"], out["author"]) == (1, "applied", "admin")
    assert out["model"]["method"] == "grace" and out["model"]["id"] == "e1"
    assert len(person.plans) == 1
    assert oe.kg.store.objects("germany", "capital") == ["hamburg"]
    assert oe.kg.store.head() == head + 1 and own_model_edits(oe) == ["e1"]
    [a] = s.handle("What is the capital of Germany?")[0]["answers"]
    assert (a["kg"], a["model"], a["agree"]) == (["Hamburg"], "Hamburg", True)

    # an edit without conflicts is applied without asking
    events = s.handle("Olaf Scholz is no longer a citizen of Germany")
    assert types(events) == ["plan", "outcome"] and events[0]["confirmed"] is None
    assert events[1]["outcome"]["status"] == "applied" and events[1]["outcome"]["edit"] == 2
    assert len(person.plans) == 1
    assert oe.kg.store.objects("olaf_scholz", "citizen_of") == []

    [h] = s.handle("/history")
    assert h["type"] == "history" and h["user"] == "admin"
    assert [(e["id"], e["status"], e["text"]) for e in h["edits"]] == [
        (2, "applied", "Olaf Scholz is no longer a citizen of Germany"), (1, "applied", EDIT)]
    assert [e["id"] for e in s.handle("/history 1")[0]["edits"]] == [2]

    [u] = s.handle("/undo")
    assert u["type"] == "undone" and u["edit"] == 2 and u["rolled_back"] == [2]
    assert oe.kg.store.objects("olaf_scholz", "citizen_of") == ["germany"]
    [u] = s.handle("/undo")
    assert u["rolled_back"] == [1] and u["details"][0]["model"]["id"] == "e1"
    assert oe.kg.store.objects("germany", "capital") == ["berlin"]
    assert own_model_edits(oe) == []
    [a] = s.handle("What is the capital of Germany?")[0]["answers"]
    assert (a["kg"], a["model"]) == (["Berlin"], "Berlin")
    assert [oe.ledger.get(i).status for i in (1, 2)] == ["rolled_back", "rolled_back"]
    [none] = s.handle("/undo")
    assert none["type"] == "info" and "no applied edit" in none["message"]
    assert [(e["id"], e["status"]) for e in s.handle("/history")[0]["edits"]] == [(2, "rolled_back"), (1, "rolled_back")]


def test_undo_and_explain_in_words(oe):
    s = chat(oe)
    s.handle(EDIT)
    s.handle("The capital of Italy is Palermo")
    s.handle("Olaf Scholz's wife is Brigitte Macron")
    assert oe.ledger.count(status="applied") == 3

    [e] = s.handle("explain edit 2")
    assert e["type"] == "explain" and e["about"] == "edit"
    assert (e["edit"]["id"], e["edit"]["text"], e["edit"]["status"]) == (2, "The capital of Italy is Palermo", "applied")
    [h] = s.handle("show the history of Germany")
    assert h["type"] == "history" and h["entity"] == {"id": "germany", "label": "Germany"}
    assert [r["id"] for r in h["edits"]] == [1]
    [h] = s.handle("show the history of Olaf Scholz")
    assert [r["id"] for r in h["edits"]] == [3]
    [h] = s.handle("show the history of the capital of Italy")
    assert h["relation"] == "capital" and [r["id"] for r in h["edits"]] == [2]
    [f] = s.handle("why is Hamburg the capital of Germany")
    assert f["type"] == "explain" and f["about"] == "fact" and f["relation"] == "capital"
    assert [r["id"] for r in f["edits"]] == [1] and f["answer"]["kg"] == ["Hamburg"]
    [f] = s.handle("why is Paris the capital of France")
    assert f["edits"] == [] and "loaded KG" in f["message"]

    [u] = s.handle("revert edit 2")
    assert u["type"] == "undone" and u["rolled_back"] == [2]
    assert oe.kg.store.objects("italy", "capital") == ["rome"]
    events = s.handle("undo the last 2 edits")
    assert types(events) == ["undone", "undone"]
    assert [ev["edit"] for ev in events] == [3, 1]
    assert oe.ledger.count(status="applied") == 0 and own_model_edits(oe) == []
    assert oe.kg.store.objects("olaf_scholz", "spouse") == ["britta_ernst"]
    [err] = s.handle("explain edit 42")
    assert err["type"] == "error" and err["message"] == "No edit #42 in the ledger."

    # an edit and a question in one line: in order, so the answer sees the edit
    events = s.handle("The capital of Germany is Detmold. What is the capital of Germany?")
    assert types(events) == ["plan", "outcome", "answer"]
    assert events[1]["outcome"]["edit"] == 4 and events[2]["answers"][0]["kg"] == ["Detmold"]


def test_an_ambiguous_name_asks_which_one(oe):
    person = Person(pick="queen_letizia", accept=True)
    s = chat(oe, person)
    events = s.handle(QUEEN_EDIT)
    assert types(events) == ["chosen", "plan", "outcome"]
    [(mention, candidates)] = person.choices
    assert mention == "The Queen"
    assert {c["id"] for c in candidates} == {"queen_camilla", "queen_letizia", "queen_maxima"}
    assert all(c["type"] == "Person" and c["label"].startswith("Queen") for c in candidates)
    assert events[0]["entity"] == {"id": "queen_letizia", "label": "Queen Letizia", "type": "Person"}
    assert events[2]["outcome"]["status"] == "applied"
    requested = events[1]["plan"]["requested"]
    assert [(r["subject"], r["relation"], r["object"]) for r in requested] == [("queen_letizia", "spouse", "olaf_scholz")]
    # two conflicts (Letizia's and Scholz's marriages), confirmed once
    [plan] = person.plans
    assert {c["fact"]["object"] for c in plan["conflicts"]} == {"felipe_vi", "britta_ernst"}
    st = oe.kg.store
    assert st.objects("queen_letizia", "spouse") == ["olaf_scholz"]
    assert st.objects("olaf_scholz", "spouse") == ["queen_letizia"]
    assert st.objects("felipe_vi", "spouse") == [] and st.objects("queen_camilla", "spouse") == ["charles_iii"]

    # a question with the same name: asked again, answered for the one chosen
    person.pick = "queen_camilla"
    events = s.handle("Who is the Queen's husband?")
    assert types(events) == ["chosen", "answer"] and len(person.choices) == 2
    assert events[1]["answers"][0]["kg"] == ["Charles III"]


def test_ambiguity_cancelled_or_unanswerable_changes_nothing(oe):
    before = state(oe)
    person = Person(pick=None)
    events = chat(oe, person).handle(QUEEN_EDIT)
    assert types(events) == ["cancelled"] and len(person.choices) == 1 and person.plans == []
    assert state(oe) == before

    # nobody to ask (choose=None, as in --json): the candidates come back as an event
    s = ChatSession(oe, choose=None, confirm=lambda plan: True)
    [ev] = s.handle(QUEEN_EDIT)
    assert ev["type"] == "choice_needed" and ev["mention"] == "The Queen" and ev["role"] == "subject"
    assert [c["id"] for c in ev["candidates"]] == ["queen_camilla", "queen_letizia", "queen_maxima"]
    assert state(oe) == before


def test_mistakes_are_error_events(oe):
    s = chat(oe)
    [err] = s.handle("this line means nothing at all")
    assert err["type"] == "error" and err["error"] == "ParseError" and "undo my last edit" in err["hint"]
    [err] = s.handle("/frobnicate")
    assert err["type"] == "error" and "/help" in err["hint"]
    assert s.handle("/history x")[0]["type"] == "error"
    assert s.handle("/undo 3")[0]["type"] == "error"
    [err] = s.handle("revert edit 99")
    assert err["message"] == "No edit #99 in the ledger."
    [refused] = s.handle("The capital of Germany is Olaf Scholz")  # a Person as a capital: refused as read
    assert refused["type"] == "error" and refused["error"] == "TypeClashError"
    assert "'Olaf Scholz' is a Person, but 'capital' must name a City" in refused["message"]
    assert s.handle("   ") == []
    [h] = s.handle("/help")
    assert h["type"] == "help" and {c["command"] for c in h["commands"]} >= {"/help", "/undo", "/quit, /exit"}

    oe.users.add("vic", "viewer")
    viewer = chat(oe, user="vic")
    [err] = viewer.handle(EDIT)
    assert err["type"] == "error" and err["error"] == "PermissionDenied" and err["exit_code"] == 77
    assert viewer.handle("What is the capital of Germany?")[0]["type"] == "answer"
    assert viewer.handle("/undo")[0]["type"] == "info"
    assert oe.kg.store.objects("germany", "capital") == ["berlin"]

    assert not s.done
    assert s.handle("/quit") == [{"type": "bye", "message": "Bye."}] and s.done
    assert types(chat(oe).handle("/exit")) == ["bye"]


# -- the command -----------------------------------------------------------------------------------------
def chat_app() -> typer.Typer:
    app = typer.Typer()
    app.command("chat")(handle_errors(chat_command))
    app.command("version")(lambda: None)  # two commands: `chat` stays a subcommand
    return app


def run_chat(ws, *args, input: str, code: int = 0):
    res = CliRunner().invoke(chat_app(), ["chat", "--workspace", str(ws), *args], input=input)
    assert res.exit_code == code, (res.output, res.exception)
    return res


def test_chat_command_json_lines(copy_ws):
    res = run_chat(copy_ws, "--json", "--yes", "--method", "grace",
                   input="What is the capital of Germany?\n\n" + EDIT + "\n")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [line["input"] for line in lines] == ["What is the capital of Germany?", EDIT]
    assert types(lines[0]["events"]) == ["answer"]
    assert lines[0]["events"][0]["answers"][0]["kg"] == ["Berlin"]
    assert types(lines[1]["events"]) == ["plan", "outcome"]
    out = lines[1]["events"][1]["outcome"]
    assert (out["status"], out["edit"]) == ("applied", 1)
    assert [a["after"] for a in out["model"]["answers"] if a["prompt"] == "The capital of Germany is"] == ["Hamburg"]

    # without --yes a conflicting edit is not applied; ambiguity lists the candidates; /quit stops
    res = run_chat(copy_ws, "--json", "--method", "grace",
                   input="The capital of Germany is Detmold\n" + QUEEN_EDIT + "\nnonsense words here\n/quit\n"
                         "The capital of Germany is Palermo\n")
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [types(line["events"]) for line in lines] == [["plan", "outcome"], ["choice_needed"], ["error"], ["bye"]]
    cancelled = lines[0]["events"][1]["outcome"]
    assert cancelled["status"] == "cancelled" and "--yes" in cancelled["hint"]
    assert len(lines[1]["events"][0]["candidates"]) == 3
    with OneEdit.open(copy_ws, load_model=False) as oe:
        assert oe.kg.store.objects("germany", "capital") == ["hamburg"]
        assert oe.ledger.count() == 1

    bad = run_chat(copy_ws.parent / "nowhere", "--json", input="", code=1)
    assert json.loads(bad.stdout)["error"] == "WorkspaceError"


def test_chat_command_in_a_terminal(copy_ws):
    res = run_chat(copy_ws, "--method", "grace", input="\n".join([
        "What is the capital of Germany?",
        EDIT, "n",                 # conflicts: declined
        QUEEN_EDIT, "2", "y",      # the second queen (Letizia), conflicts accepted
        "/history",
        "/undo",
        "blah blah nonsense",
        "/help",
    ]) + "\n")
    out = res.stdout
    assert "/help" in out.splitlines()[0]
    assert "agree" in out and "Conflicts" in out and "cancelled" in out
    assert "1. Queen Camilla" in out and "Using Queen Letizia" in out
    assert "applied as edit #1" in out and "Rolled back #1" in out
    assert "Error:" in out and "Hint:" in out and "/history [N]" in out
    with OneEdit.open(copy_ws, load_model=False) as oe:
        assert oe.ledger.get(1).status == "rolled_back" and oe.ledger.count() == 1
        assert oe.kg.store.objects("queen_letizia", "spouse") == ["felipe_vi"]
        assert oe.kg.store.objects("germany", "capital") == ["berlin"]


def test_a_follow_up_leans_on_the_last_turn_and_is_shown_before_it_applies(copy_ws):
    """"What is the capital of Germany?" then "Change it to Hamburg" (same subject and relation, new
    value: read as a replacement, shown, and confirmed even without a conflict prompt otherwise),
    then "and France's?" (the same relation of another subject)."""
    person = Person(accept=False)
    with OneEdit.open(copy_ws, load_model=False) as oe:
        s = chat(oe, person)
        assert types(s.handle("What is the capital of Germany?")) == ["answer"]
        declined = s.handle("Change it to Hamburg")
        ctx = declined[0]
        assert (ctx["type"], ctx["op"], ctx["subject"], ctx["relation"], ctx["object"]) == (
            "context", "replace", "Germany", "capital", "Hamburg")
        assert person.plans and oe.kg.store.objects("germany", "capital") == ["berlin"]  # asked, declined
        person.accept = True
        applied = s.handle("Change it to Hamburg")
        assert applied[-1]["outcome"]["status"] == "applied"
        assert oe.kg.store.objects("germany", "capital") == ["hamburg"]
        other = s.handle("and France's?")
        assert types(other) == ["context", "answer"] and other[1]["answers"][0]["kg"] == ["Paris"]
        # without a focus, the same words are read on their own (and are not a request)
        fresh = chat(oe, person)
        assert types(fresh.handle("Change it to Hamburg")) == ["error"]
