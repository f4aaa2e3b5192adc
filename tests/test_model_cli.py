"""`oneedit model ...` and `oneedit eval` end to end, on the test knowledge model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from oneedit.cli import app

runner = CliRunner()


def run(*args, code: int = 0):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return res


def run_json(*args, code: int = 0):
    return json.loads(run(*args, "--json", code=code).stdout)


def test_check_reports_the_quality_gate(copy_ws):
    res = runner.invoke(app, ["model", "check", "-w", str(copy_ws), "--json"])
    out = json.loads(res.stdout)
    assert res.exit_code == (0 if out["passed"] else 1)  # scripts can gate on it
    assert out["train"]["exact_match"] >= 0.97 and out["edits"] == 0
    assert out["gate"] == {"train": 0.97, "heldout": 0.85}
    assert out["passed"] == (out["heldout"]["exact_match"] >= 0.85)
    assert "capital" in out["train"]["by_relation"]


def test_edit_ask_list_undo(copy_ws):
    before = run_json("model", "ask", "-w", copy_ws, "The capital of France is")["completion"].strip()
    assert before == "Paris"
    out = run_json("model", "edit", "-w", copy_ws, "France", "capital", "Berlin", "--method", "memit")
    assert out["edit"] == "m1" and out["holds"] is True
    assert {p["before"] for p in out["prompts"]} == {"Paris"} and {p["after"] for p in out["prompts"]} == {"Berlin"}
    assert run_json("model", "ask", "-w", copy_ws, "The capital of France is")["completion"].strip() == "Berlin"
    g = run_json("model", "edit", "-w", copy_ws, "Germany", "capital", "Vienna", "--method", "grace")
    assert g["edit"] == "m2" and g["holds"] is True
    edits = run_json("model", "edits", "-w", copy_ws)
    assert [(e["id"], e["method"]) for e in edits] == [("m1", "memit"), ("m2", "grace")]
    info = run_json("model", "info", "-w", copy_ws)
    assert info["edits"] == 2 and info["grace_entries"] >= 1 and info["key_position"] == "last"
    run_json("model", "undo", "-w", copy_ws, "m2")
    undone = run_json("model", "undo", "-w", copy_ws, "m1")
    assert undone["latest"] is True
    assert run_json("model", "ask", "-w", copy_ws, "The capital of France is")["completion"].strip() == "Paris"
    human = run("model", "edits", "-w", copy_ws).stdout
    assert "0 model edits" in human


def test_eval_writes_report(copy_ws, tmp_path):
    out = run_json("eval", "-w", copy_ws, "--method", "memit", "--edits", "6", "--report", tmp_path / "r")
    assert out["edits"] == 6 and out["batch_size"] == 6
    assert out["after"]["reliability"]["exact_match"] >= 0.5  # measured 0.72 on this small test model
    assert out["before"]["reliability"]["exact_match"] <= 0.2
    assert out["after"]["locality"]["probes"] > 0 and out["after"]["locality"]["exact_match"] >= 0.7
    assert set(out["after"]) == {"reliability", "generality", "locality", "portability"}
    assert (tmp_path / "r" / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "r" / "report.md").read_text()
    assert "| reliability |" in md and "metrics.png" in md
    cases = json.loads((tmp_path / "r" / "result.json").read_text())["cases"]
    assert len(cases) == 6 and all(c["old"] != c["new"] for c in cases)
    # eval never changes the workspace's model
    assert run_json("model", "edits", "-w", copy_ws) == []


def test_eval_augmentation_moves_the_consequences(copy_ws):
    """--augment writes the derived facts with each edit; their held-out probes follow the edit."""
    args = ("eval", "-w", copy_ws, "--method", "memit", "--edits", "8", "--seed", "2")
    plain = run_json(*args, "--no-augment")
    aug = run_json(*args, "--augment")
    assert plain["augment"] is False and plain["requests"] == 8
    assert aug["augment"] is True and aug["requests"] > 8
    assert aug["after"]["portability"]["probes"] == plain["after"]["portability"]["probes"] > 0
    # one augmentation request per consequence probed (the default model's numbers are in
    # docs/controller.md: portability 0.03 -> 0.73); this small test model barely generalises to
    # the held-out phrasings the consequences are probed on, so only no loss is asserted here
    assert aug["requests"] - 8 == aug["after"]["portability"]["probes"]
    assert aug["after"]["portability"]["token_accuracy"] >= plain["after"]["portability"]["token_accuracy"]
    assert aug["after"]["reliability"]["exact_match"] >= 0.5


def test_eval_sequential_grace(copy_ws):
    out = run_json("eval", "-w", copy_ws, "--method", "grace", "--edits", "5", "--sequential")
    assert out["sequential"] and out["batch_size"] == 1 and len(out["right_after"]) == 5
    # GRACE's guarantee: an edit whose value reached its stop loss (every answer token above
    # 0.97 probability) is said, token for token, by generation — right after it and at the end
    converged = 1 - len(out["unconverged_cases"]) / 5
    assert converged >= 0.6, out["unconverged_cases"]
    assert out["after"]["reliability"]["exact_match"] >= converged - 1e-9
    assert out["right_after_each_edit"]["reliability_exact"] >= converged - 1e-9
    assert [row["edits"] for row in out["curve"]][-1] == 5


def test_missing_model_errors_say_what_to_do(copy_ws, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err = run_json("model", "info", "-w", copy_ws, "--model", "someorg/not-downloaded-model", code=1)
    assert err["error"] == "ModelNotFoundError"
    assert "download" in err["hint"] and "--model ./models/not-downloaded-model" in err["hint"]
    err = run_json("model", "info", "-w", copy_ws, "--model", str(tmp_path / "nope"), code=1)
    assert "no such directory" in err["message"]
    empty = tmp_path / "empty"
    empty.mkdir()
    err = run_json("model", "info", "-w", copy_ws, "--model", str(empty), code=1)
    assert "config.json" in err["message"]
    err = run_json("model", "info", "-w", copy_ws, "--device", "cuda", code=1) if not _cuda() else None
    if err:
        assert "CUDA" in err["message"]


def test_bad_edit_input_changes_nothing(copy_ws):
    err = run_json("model", "edit", "-w", copy_ws, "Atlantis", "capital", "Paris", code=1)
    assert err["error"] == "UnknownEntityError"
    err = run_json("model", "edit", "-w", copy_ws, "France", "capitol of", "Paris", "--method", "rome", code=1)
    assert err["error"] in {"UnknownRelationError", "OneEditError"}
    assert run_json("model", "edits", "-w", copy_ws) == []


def test_local_directory_model_with_corpus(copy_ws, tmp_path):
    """A non-default model by path: its edits live apart from the default model's."""
    from oneedit.models import base_dir
    from oneedit.workspace import Workspace

    import shutil

    other = tmp_path / "other-model"
    shutil.copytree(base_dir(Workspace.open(copy_ws)), other)
    (other / "oneedit.json").unlink()  # now it is "any local model": no card, needs a corpus
    err = run_json("model", "edit", "-w", copy_ws, "France", "capital", "Berlin", "--model", other, code=1)
    assert "corpus" in err["message"]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": f"The capital of {c} is {k}"})
                                for c, k in [("Spain", "Madrid"), ("Italy", "Rome")] * 50) + "\n")
    out = run_json("model", "edit", "-w", copy_ws, "France", "capital", "Berlin", "--model", other,
                   "--corpus", corpus)
    assert out["edit"] == "m1"
    assert run_json("model", "edits", "-w", copy_ws) == []  # the default model is untouched
    assert len(run_json("model", "edits", "-w", copy_ws, "--model", other)) == 1


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("bad", ["", "   "])
def test_ask_rejects_empty_prompt(copy_ws, bad):
    err = run_json("model", "ask", "-w", copy_ws, bad, code=1)
    assert "empty" in err["message"]
