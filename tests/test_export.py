"""Export: an edited model as a plain Hugging Face directory that transformers loads with no OneEdit
code, the MEMIT edits merged into its weights (``editor.export``, ``oneedit model export``).

The tiny-model tests take ``model_cache`` so their key statistics land in the test cache, not the user's."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer
from typer.testing import CliRunner

from tests import tiny_models as tm
from editor.encoding import TextCodec
from editor.export import PROVENANCE
from editor.probe import greedy, teacher_forced
from editor.request import Request
from editor.verbalize import Prompt
from oneedit.cli import app
from oneedit.core import OneEditError

EDIT = Prompt("The capital of France is", " Berlin", "France")
GRACE = Prompt("The capital of Germany is", " Oslo", "Germany")
PROBES = [EDIT] + [Prompt(f"The capital of {c} is", f" {k}", c) for c, k in tm.PAIRS[1:]] + \
         [Prompt(f"{k} is a city in", f" {c}", k) for c, k in tm.PAIRS[:4]]


def plain(path):
    """The directory loaded the way a user (or a server) would: transformers alone, dtype from the config."""
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


def logits(model, tok, prompts):
    ids = tok([p.text for p in prompts], return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**ids).logits.float()


def continuation(model, tok, text, n=4):
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                             pad_token_id=tok.pad_token_id, eos_token_id=None)
    return out[0, ids.shape[1]:].tolist()


def leftovers(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


@pytest.mark.parametrize("name,kind", [("gpt2", "bytebpe"), ("llama", "sentencepiece")])
def test_exported_model_answers_with_the_edit_in_plain_transformers(name, kind, tmp_path, model_cache):
    em = tm.editable(name, kind)
    em.edit("e1", [Request.of([EDIT])], "memit")
    assert em.holds([Request.of([EDIT])]) == [True]

    out = em.export(tmp_path / "fp32")
    model, tok = plain(tmp_path / "fp32")
    assert model.dtype == torch.float32 and type(model) is type(em.model)
    # fp32: the same weights, so the same logits on every probe and the same continuation
    assert torch.allclose(logits(model, tok, PROBES), logits(em.model, em.codec.tokenizer, PROBES), atol=1e-5)
    assert continuation(model, tok, EDIT.text) == continuation(em.model, em.codec.tokenizer, EDIT.text)
    exact, said = greedy(model, TextCodec(tok), [EDIT])
    assert exact == [True], said
    assert [e["id"] for e in out["merged"]] == ["e1"] and out["merged"][0]["facts"][0]["target"] == "Berlin"
    assert out["dtype"] == "float32" and out["grace_skipped"] == []

    em.export(tmp_path / "fp16", dtype="fp16")
    half, tok16 = plain(tmp_path / "fp16")
    assert half.dtype == torch.float16
    assert json.loads((tmp_path / "fp16" / "config.json").read_text())["dtype"] == "float16"
    full = logits(em.model, em.codec.tokenizer, PROBES)
    assert (logits(half, tok16, PROBES) - full).abs().max() <= 0.02 * full.abs().max()
    # the edited answer survives fp16: every target token still ranked first (teacher forced)
    ok: list[bool] = []
    teacher_forced(half, TextCodec(tok16), [EDIT], all_correct=ok)
    assert ok == [True]
    # the live model is as it was: fp32, its config untouched by the export
    assert next(em.model.parameters()).dtype == torch.float32 and em.holds([Request.of([EDIT])]) == [True]


def test_half_precision_model_exports_its_fp32_masters(tmp_path, model_cache):
    """A bf16 model keeps fp32 masters of the edited projections; an fp32 export writes those, not
    the rounded bf16 copies, and a default export stays bf16."""
    em = tm.editable("llama", "sentencepiece", dtype=torch.bfloat16)
    em.edit("e1", [Request.of([EDIT])], "memit")
    masters = em.weights.by_name()
    assert masters and all(m.dtype == torch.float32 for m in masters.values())

    em.export(tmp_path / "fp32", dtype="fp32")
    live = em.model.state_dict()
    with safe_open(str(tmp_path / "fp32" / "model.safetensors"), "pt") as f:
        for key in f.keys():
            t = f.get_tensor(key)
            assert t.dtype == torch.float32
            if key in masters:
                assert torch.equal(t, masters[key].cpu())              # the master, bit for bit
                assert not torch.equal(t, live[key].float())           # not the bf16 copy
            else:
                assert torch.equal(t, live[key].float())
    assert plain(tmp_path / "fp32")[0].dtype == torch.float32

    out = em.export(tmp_path / "own")
    model, tok = plain(tmp_path / "own")
    assert out["dtype"] == "bfloat16" and model.dtype == torch.bfloat16
    # the same bf16 weights bit for bit (logits differ a little: a model built from a config and cast
    # to bf16 casts its rotary buffer too, from_pretrained keeps it fp32)
    assert all(torch.equal(t, live[k]) for k, t in model.state_dict().items())
    assert greedy(model, TextCodec(tok), [EDIT])[0] == [True]


def test_a_model_offloaded_by_accelerate_exports_the_values_it_runs_with(tmp_path, model_cache):
    """accelerate's CPU offload keeps the weights in a weights map (the parameters are on ``meta``):
    the export reads them from there, edited projection included."""
    accelerate = pytest.importorskip("accelerate")
    em = tm.editable("gpt2", "bytebpe")
    accelerate.cpu_offload(em.model, execution_device=torch.device("cpu"))
    em.edit("e1", [Request.of([EDIT])], "memit")
    em.export(tmp_path / "out")
    model, tok = plain(tmp_path / "out")
    assert torch.allclose(logits(model, tok, PROBES), logits(em.model, tok, PROBES), atol=1e-5)
    assert greedy(model, TextCodec(tok), [EDIT])[0] == [True]


def test_grace_edits_are_refused_or_left_out_on_request(tmp_path, model_cache):
    from editor.hparams import Hparams
    from editor.loading import wrap
    from editor.session import EditableModel

    hp = tm.hparams("gpt2")
    hp = Hparams(hp.name, hp.memit, hp.grace.replace(stop_loss=0.1), hp.notes)  # stop at p ≈ 0.9: fast
    m, tok = tm.model("gpt2", "bytebpe")
    em = EditableModel(wrap(m, tok, name="tiny-gpt2"), corpus=tm.CORPUS, hparams=hp)
    em.edit("e1", [Request.of([EDIT])], "memit")
    em.edit("g1", [Request.of([GRACE])], "grace")
    assert em.holds([Request.of([GRACE])]) == [True]

    with pytest.raises(OneEditError) as err:
        em.export(tmp_path / "out")
    assert "1 GRACE edit (g1)" in err.value.message and "MEMIT" in err.value.hint
    assert not (tmp_path / "out").exists() and leftovers(tmp_path / "out") == []

    out = em.export(tmp_path / "out", skip_grace=True)
    prov = json.loads((tmp_path / "out" / PROVENANCE).read_text())
    assert [e["id"] for e in prov["merged"]] == ["e1"]
    assert [(e["id"], e["method"], e["facts"][0]["target"]) for e in prov["grace_skipped"]] == [("g1", "grace", "Oslo")]
    assert out["grace_skipped"] == prov["grace_skipped"]
    assert "Not included: 1 GRACE edit (g1)" in (tmp_path / "out" / "README.md").read_text()
    # the export is the model without its codebook: the MEMIT edit holds, the GRACE prompt is unedited
    model, tok = plain(tmp_path / "out")
    em.grace.enabled = False
    try:
        assert torch.allclose(logits(model, tok, PROBES + [GRACE]), logits(em.model, tok, PROBES + [GRACE]), atol=1e-5)
    finally:
        em.grace.enabled = True
    assert greedy(model, TextCodec(tok), [EDIT, GRACE])[0] == [True, False]


def test_non_empty_directory_is_refused_and_an_export_is_never_half_written(tmp_path, model_cache):
    em = tm.editable("gpt2", "bytebpe", state_dir=tmp_path / "state")
    em.edit("e1", [Request.of([EDIT])], "memit")
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")

    with pytest.raises(OneEditError) as err:
        em.export(target)
    assert "not empty" in err.value.message and "--force" in err.value.hint
    assert [p.name for p in target.iterdir()] == ["keep.txt"] and leftovers(target) == []

    # an error half way (weights written, the tokenizer cannot be) leaves the old directory as it was
    tokenizer = em.loaded.tokenizer
    em.loaded.tokenizer = object()
    with pytest.raises(AttributeError):
        em.export(target, force=True)
    em.loaded.tokenizer = tokenizer
    assert [p.name for p in target.iterdir()] == ["keep.txt"] and leftovers(target) == []

    crashed = tmp_path / ".out.oneedit-tmp-999999999"  # what a killed export (no such process) left
    crashed.mkdir()
    (crashed / "model.safetensors").write_bytes(b"partial")
    em.export(target, force=True)
    assert not (target / "keep.txt").exists() and (target / "model.safetensors").is_file()
    assert leftovers(target) == []
    # never into the files the model is read from
    with pytest.raises(OneEditError, match="Refusing to export"):
        em.export(tmp_path, force=True)
    assert (tmp_path / "state" / "edits.json").is_file()


runner = CliRunner()


def run(*args, code: int = 0):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return res


def test_cli_export_of_the_knowledge_model(copy_ws, tmp_path):
    edit = json.loads(run("model", "edit", "-w", copy_ws, "France", "capital", "Berlin", "--json").stdout)
    assert edit["holds"] is True
    grace = json.loads(run("model", "edit", "-w", copy_ws, "Germany", "capital", "Vienna", "--method", "grace",
                           "--json").stdout)
    assert grace["edit"] == "m2" and grace["holds"] is True
    before = grace["prompts"][0]["before"]
    out_dir = tmp_path / "exported"

    refused = run("model", "export", out_dir, "-w", copy_ws, code=1)
    assert "1 GRACE edit (m2)" in refused.output and "oneedit model consolidate" in refused.output
    assert "--skip-grace" in refused.output
    assert not out_dir.exists() and leftovers(out_dir) == []
    assert "Unknown dtype 'int8'" in run("model", "export", out_dir, "-w", copy_ws, "--skip-grace", "--dtype", "int8",
                                         code=1).output

    out = json.loads(run("model", "export", out_dir, "-w", copy_ws, "--skip-grace", "--dtype", "fp16", "--json").stdout)
    assert out["path"] == str(out_dir.resolve()) and out["dtype"] == "float16" and out["bytes"] > 0
    assert [e["id"] for e in out["merged"]] == ["m1"] and [e["id"] for e in out["grace_skipped"]] == ["m2"]
    assert out["source"]["model"] == "default" and isinstance(out["kg_revision"], int)
    assert json.loads((out_dir / PROVENANCE).read_text())["merged"] == out["merged"]
    assert "France" in (out_dir / "README.md").read_text()

    model, tok = plain(out_dir)
    assert model.dtype == torch.float16
    for text, answer in (("The capital of France is", "Berlin"), ("The capital of Germany is", before)):
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=8,
                                 pad_token_id=tok.eos_token_id)
        assert tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True).strip() == answer

    again = run("model", "export", out_dir, "-w", copy_ws, "--skip-grace", code=1)
    assert "not empty" in again.output
    human = run("model", "export", out_dir, "-w", copy_ws, "--skip-grace", "--force").output
    assert "Exported model default" in human and "1 MEMIT (m1)" in human and "1 GRACE (m2)" in human
