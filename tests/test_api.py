"""The Python API: ``Editor`` (EasyEdit-style editing of a model) and the worked examples of
docs/api.md, run as written against the test knowledge workspace and a tiny local model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from oneedit import Editor, EditResult
from oneedit.core import OneEditError
from tests import tiny_models

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def doc_examples() -> list[str]:
    """The python blocks of docs/api.md that run as written (those that import from oneedit; the
    OneEdit facade's example is the flow tests/test_pipeline.py covers, submit to rollback)."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return [b for b in blocks if b.startswith("from oneedit import")]


def weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_the_editor_example_runs_as_documented(copy_ws, monkeypatch, capsys):
    monkeypatch.setenv("ONEEDIT_HOME", str(copy_ws))
    editor_block = doc_examples()[0]
    assert "Editor.from_workspace()" in editor_block
    ns: dict = {}
    exec(compile(editor_block, str(DOC), "exec"), ns)
    printed = capsys.readouterr().out.splitlines()
    # before, after the edit, after the undo: what the comments in the example say
    assert printed[0].strip() == "Paris" and printed[1].strip() == "Lyon" and printed[-1].strip() == "Paris"
    result, editor = ns["result"], ns["editor"]
    assert isinstance(result, EditResult) and result.model is editor.model
    s = result.summary
    assert s["before"]["reliability"]["exact_match"] == 0.0
    assert s["after"]["reliability"]["exact_match"] >= 2 / 3  # λ retries write the edit's own prompts
    assert s["after"]["reliability"]["token_accuracy"] > s["before"]["reliability"]["token_accuracy"]
    assert s["after"]["generality"]["token_accuracy"] >= s["before"]["generality"]["token_accuracy"]
    assert s["after"]["locality"]["probes"] == 2 and s["after"]["locality"]["token_accuracy"] >= 0.5
    row = result.metrics[0]
    assert row["subject"] == "France" and row["target"] == "Lyon" and len(row["prompts"]) == 3
    assert row["pre"]["locality"]["exact_match"] == 1.0  # against the unedited model's own answers
    assert editor.edit_ids == []


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    model, tok = tiny_models.model("gpt2", "bytebpe")
    out = tmp_path_factory.mktemp("tiny") / "gpt2"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def tiny_editor(path, **kw) -> Editor:
    hp = tiny_models.hparams("gpt2")
    return Editor.from_pretrained(path, corpus=tiny_models.CORPUS, hparams=hp, **kw)


def test_from_pretrained_edits_a_local_model_in_place_saves_it_and_reset_restores_it(tiny_dir, tmp_path):
    editor = tiny_editor(tiny_dir)
    before = weights(editor.model)
    result = editor.edit(prompts=["The capital of France is", "The capital of Spain is"],
                         targets=["Berlin", "Oslo"], subjects=["France", "Spain"],
                         rephrases=["Paris is a city in France. The capital of France is", []],
                         locality=[["The capital of Italy is"], "The capital of Poland is"],
                         ground_truth=["Paris", "Madrid"])
    assert result.summary["after"]["reliability"]["token_accuracy"] == 1.0
    assert result.summary["before"]["reliability"]["exact_match"] == 0.0
    assert [m["ground_truth"] for m in result.metrics] == ["Paris", "Madrid"]
    assert result.metrics[1]["post"]["generality"]["probes"] == 0
    assert editor.generate("The capital of France is", 1).strip() == "Berlin"
    changed = [k for k, v in weights(editor.model).items() if not torch.equal(v, before[k])]
    assert changed and all("mlp.c_proj" in k for k in changed)  # MEMIT's layers, nothing else
    assert len(result.edit_ids) == 1
    out = editor.save(tmp_path / "edited")
    from transformers import AutoModelForCausalLM

    exported = AutoModelForCausalLM.from_pretrained(out["path"])
    assert all(torch.equal(v, exported.state_dict()[k]) for k, v in weights(editor.model).items())
    editor.reset()
    assert all(torch.equal(v, before[k]) for k, v in weights(editor.model).items())


def test_sequential_batches_and_grace(tiny_dir):
    editor = tiny_editor(tiny_dir)
    seq = editor.edit(prompts=["The capital of France is", "The capital of Spain is"],
                      targets=["Berlin", "Oslo"], subjects=["France", "Spain"], sequential=True)
    assert len(seq.edit_ids) == 2 and all("right_after" in m for m in seq.metrics)
    assert all(m["right_after"]["reliability"]["token_accuracy"] == 1.0 for m in seq.metrics)
    g = editor.edit(prompts=["The capital of Italy is"], targets=["Rome"], method="grace")
    assert g.summary["method"] == "grace" and g.summary["after"]["reliability"]["token_accuracy"] >= 0.99
    assert len(set(editor.edit_ids)) == 3  # ids never collide across calls
    editor.undo(g.edit_ids[0])
    assert len(editor.edit_ids) == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompts=["The capital of France is"], targets=["Berlin", "Oslo"]), "targets must be a list"),
    (dict(prompts=["The capital of France is"], targets=["Berlin"], subjects="France"), "subjects must be a list"),
    (dict(prompts=["  "], targets=["Berlin"]), "prompt 0 is empty"),
    (dict(prompts=["The capital of France is"], targets=[""]), "target 0 is empty"),
    (dict(prompts=["The capital of France is"], targets=["Berlin"], subjects=["Spain"]), "does not occur"),
    (dict(prompts=["The capital of France is"], targets=["Berlin"], method="rome"), "Unknown editing method"),
    (dict(prompts=[], targets=[]), "no prompts"),
])
def test_bad_calls_say_what_is_wrong_and_change_nothing(tiny_dir, kwargs, message):
    editor = tiny_editor(tiny_dir)
    before = weights(editor.model)
    with pytest.raises(OneEditError, match=message):
        editor.edit(**kwargs)
    assert editor.edit_ids == [] and all(torch.equal(v, before[k]) for k, v in weights(editor.model).items())


def test_subject_keys_need_subjects_and_missing_models_say_where_to_get_them(tiny_dir, tmp_path):
    editor = tiny_editor(tiny_dir, memit={"key_position": "subject_last"})
    with pytest.raises(OneEditError, match="subject's last token"):
        editor.edit(prompts=["The capital of France is"], targets=["Berlin"])
    with pytest.raises(OneEditError, match="not on this machine"):
        Editor.from_pretrained(str(tmp_path / "no-such-model"))
