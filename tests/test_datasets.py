"""Standard editing datasets (CounterFact, zsRE): files written from the KG, read back, edited and
scored the papers' way on the test knowledge model; bad files; the probes on a tiny real model."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from typer.testing import CliRunner

from editor.datasets import FORMATS, METRICS, CounterFactRecord, DatasetError, ZsreRecord, evaluate, load, write
from oneedit.cli import app
from tests import tiny_models

runner = CliRunner()
EDITS = 8


def run(*args, code: int = 0):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res


def run_json(*args, code: int = 0):
    return json.loads(run(*args, "--json", code=code).stdout)


@pytest.fixture(scope="module")
def ws(knowledge_ws, tmp_path_factory):
    dest = tmp_path_factory.mktemp("datasets") / "ws"
    shutil.copytree(knowledge_ws, dest)
    return dest


@pytest.fixture(scope="module")
def files(ws, tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    out = {}
    for fmt in FORMATS:
        out[fmt] = folder / f"{fmt}.json"
        written = run_json("eval", "-w", ws, "--write-dataset", out[fmt], "--format", fmt, "--edits", EDITS,
                           "--seed", 1)
        assert written["records"] == EDITS and written["format"] == fmt
    return out


@pytest.fixture(scope="module")
def counterfact(ws, files):
    return run_json("eval", "-w", ws, "--dataset", files["counterfact"], "--format", "counterfact",
                    "--method", "memit")


@pytest.fixture(scope="module")
def zsre(ws, files):
    return run_json("eval", "-w", ws, "--dataset", files["zsre"], "--method", "memit")  # format told by the file


def snapshot(root):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def test_written_files_are_the_public_formats(ws, files, tmp_path):
    raw = json.loads(files["counterfact"].read_text())
    for r in raw:  # what MEMIT's compute_rewrite_quality_counterfact reads
        rw = r["requested_rewrite"]
        assert rw["subject"] in rw["prompt"].format(rw["subject"])
        assert rw["target_new"]["str"] != rw["target_true"]["str"] and rw["relation_id"]
        assert r["paraphrase_prompts"] and r["neighborhood_prompts"] and "generation_prompts" in r
    # no record's neighbour is another record's edit (its answer would move with that edit)
    edits = {rw for r in raw for rw in (r["requested_rewrite"]["prompt"].format(r["requested_rewrite"]["subject"]),
                                          *r["paraphrase_prompts"])}
    assert not edits & {p for r in raw for p in r["neighborhood_prompts"]}
    data = load(files["counterfact"])
    assert data.format == "counterfact" and len(data.records) == EDITS
    assert [r.to_json() for r in data.records] == raw  # read -> write gives the file back
    zs = json.loads(files["zsre"].read_text())
    assert all(set(r) == {"subject", "src", "rephrase", "alt", "answers", "loc", "loc_ans"} for r in zs)
    assert all(r["subject"] in r["src"] and r["alt"] != r["answers"][0] for r in zs)
    assert [r.to_json() for r in load(files["zsre"], "zsre").records] == zs
    # the same seed draws the same file
    again = tmp_path / "again.json"
    run_json("eval", "-w", ws, "--write-dataset", again, "--format", "counterfact", "--edits", EDITS, "--seed", 1)
    assert again.read_bytes() == files["counterfact"].read_bytes()


def test_counterfact_after_memit(ws, counterfact):
    b, a = counterfact["before"], counterfact["after"]
    assert counterfact["format"] == "counterfact" and counterfact["edits"] == EDITS
    assert set(a) == set(b) == {k for k, _ in METRICS["counterfact"]}
    assert counterfact["probes"]["efficacy"] == EDITS and counterfact["probes"]["neighborhood"] >= EDITS
    # the model knows its KG: before the edit the old answers win, on the edit prompt and on the
    # neighbours (which the KG answers with target_true)
    assert b["efficacy_score"] <= 0.25 and b["efficacy_magnitude"] < 0
    assert b["neighborhood_score"] >= 0.9 and b["neighborhood_exact_match"] >= 0.8  # measured 1.0 / 1.0
    # measured (these 8 edits): ES 1.0, EM +0.90, exact 1.0; NS 0.76; score 0.70
    assert a["efficacy_score"] >= max(0.75, b["efficacy_score"] + 0.5)
    assert a["efficacy_magnitude"] > b["efficacy_magnitude"] + 0.5
    assert a["efficacy_exact_match"] >= 0.6
    assert a["paraphrase_score"] >= b["paraphrase_score"]
    assert a["neighborhood_score"] >= 0.6
    for k in a:
        if k.endswith("magnitude"):
            assert -1 <= a[k] <= 1
    scores = [a[f"{g}_score"] for g in ("efficacy", "paraphrase", "neighborhood")]
    assert a["score"] == pytest.approx(0 if min(scores) == 0 else 3 / sum(1 / s for s in scores), abs=1e-3)
    assert run_json("model", "edits", "-w", ws) == []  # the workspace's model is not edited


def test_zsre_after_memit(zsre):
    b, a = zsre["before"], zsre["after"]
    assert zsre["format"] == "zsre" and set(a) == {k for k, _ in METRICS["zsre"]}
    assert b["rewrite_exact_match"] <= 0.25 and b["locality_acc"] is None  # locality compares with before
    assert a["rewrite_acc"] >= b["rewrite_acc"] + 0.3 and a["rewrite_exact_match"] >= 0.6
    # teacher-forced token accuracy counts the tokens of a half-right answer too
    for k in ("rewrite", "rephrase"):
        assert a[f"{k}_acc"] >= a[f"{k}_exact_match"] - 1e-9
    assert a["locality_acc"] >= 0.8


def test_human_output_with_grace(ws, files):
    res = run("eval", "-w", ws, "--dataset", files["zsre"], "--edits", 1, "--method", "grace")
    out = res.stdout
    assert "GRACE" in out and "1 zsRE edit " in out and "before" in out
    assert "rewrite_acc" in out and "exact match: src says alt" in out
    assert run_json("model", "edits", "-w", ws) == []


def test_bad_files_name_the_record_and_field(ws, files, tmp_path):
    before = snapshot(ws)
    cf = json.loads(files["counterfact"].read_text())
    zs = json.loads(files["zsre"].read_text())

    def bad(name, data):
        p = tmp_path / name
        p.write_text(data if isinstance(data, str) else json.dumps(data))
        return p

    missing = json.loads(json.dumps(cf))
    del missing[3]["requested_rewrite"]["target_true"]
    err = run_json("eval", "-w", ws, "--dataset", bad("missing.json", missing), "--format", "counterfact", code=1)
    assert err["error"] == "DatasetError"
    msg = err["message"]
    assert "missing.json" in msg and "record 3" in msg and "case_id 3" in msg
    assert "'requested_rewrite.target_true'" in msg and "missing" in msg
    assert "target_true" in err["hint"] and "counterfact.json" in err["hint"]
    assert err["details"] == {"file": str(tmp_path / "missing.json"), "record": 3, "case_id": 3,
                              "field": "requested_rewrite.target_true"}

    wrong = json.loads(json.dumps(zs))
    wrong[2]["answers"] = "Paris"
    err = run_json("eval", "-w", ws, "--dataset", bad("wrong.json", wrong), "--format", "zsre", code=1)
    assert "record 2" in err["message"] and "'answers'" in err["message"] and "list of text, not text" in err["message"]
    assert "zsre_mend_eval.json" in err["hint"]

    nested = json.loads(json.dumps(cf))
    nested[5]["paraphrase_prompts"][0] = 7
    nested[5]["case_id"] = "cf-5"
    err = run_json("eval", "-w", ws, "--dataset", bad("nested.json", nested), code=1)  # format told by the file
    assert "record 5 (case_id 'cf-5')" in err["message"] and "'paraphrase_prompts[0]'" in err["message"]

    no_slot = json.loads(json.dumps(cf))
    no_slot[0]["requested_rewrite"]["prompt"] = "The capital is"
    err = run_json("eval", "-w", ws, "--dataset", bad("slot.json", no_slot), code=1)
    assert "record 0" in err["message"] and '"{}"' in err["message"]

    err = run_json("eval", "-w", ws, "--dataset", bad("broken.json", files["zsre"].read_text()[:-40]), code=1)
    assert "broken.json is not valid JSON" in err["message"] and "line" in err["message"]

    err = run_json("eval", "-w", ws, "--dataset", files["zsre"], "--format", "wikidata", code=1)
    assert "Unknown dataset format 'wikidata'" in err["message"] and "--format counterfact" in err["hint"]
    err = run_json("eval", "-w", ws, "--write-dataset", tmp_path / "x.json", "--format", "wikidata", code=1)
    assert "Unknown dataset format" in err["message"] and not (tmp_path / "x.json").exists()

    # people get a message, not a traceback
    res = run("eval", "-w", ws, "--dataset", tmp_path / "missing.json", "--format", "counterfact", code=1)
    assert "Error:" in res.stderr and "record 3" in res.stderr and "Traceback" not in res.output + res.stderr
    assert snapshot(ws) == before  # nothing in the workspace changed


# -- the probes and the evaluation on a tiny real model (no end-of-fact mark: ROME's own setting) ---------
def test_target_nll_is_the_mean_token_nll():
    from editor.encoding import TextCodec
    from editor.probe import target_nll, target_predictions
    from editor.verbalize import Prompt

    model, tok = tiny_models.model("gpt2", "bytebpe")
    codec = TextCodec(tok)
    prompts = [Prompt("The capital of France is", " Paris", "France"), Prompt("Rome is a city in", " Italy", "Rome")]
    targets = [" Reykjavik", " Italy"]  # a word the tokenizer never saw: several tokens
    got = target_nll(model, codec, prompts, targets=targets)
    top = target_predictions(model, codec, prompts, targets=targets)
    for p, t, nll, pred in zip(prompts, targets, got, top, strict=True):
        # ROME/MEMIT's test_batch_prediction: tokenise "prefix target", average -log p over the target
        ids, tids = tok(p.text)["input_ids"], tok(t)["input_ids"]
        assert len(tids) > 1 or t == " Italy"  # one multi-token answer, one single-token
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids + tids])).logits[0].float(), -1)
        rows = [len(ids) - 1 + j for j in range(len(tids))]
        want = -sum(logp[r, i].item() for r, i in zip(rows, tids, strict=True)) / len(tids)
        assert nll == pytest.approx(want, abs=1e-5)
        assert pred == [int(logp[r].argmax()) for r in rows]


def _ref_logp(model, tok, prompt: str, target: str):
    """The papers' way: tokenise ``prompt + " " + target``, the target's tokens after the prompt's,
    log-probabilities at the positions that predict them."""
    ids, tids = tok(prompt)["input_ids"], tok(" " + target)["input_ids"]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids + tids])).logits[0].float(), -1)
    return logp[len(ids) - 1: len(ids) - 1 + len(tids)], tids


def test_scores_are_the_papers_formulas_on_a_tiny_model(tmp_path):
    """On a real (tiny, random) HF model without an end-of-answer mark, ROME's setting: every
    CounterFact and zsRE number equals the papers' formula computed here from raw logits."""
    from editor.datasets import measure_counterfact, measure_zsre
    from editor.encoding import TextCodec

    model, tok = tiny_models.model("gpt2", "bytebpe")
    codec = TextCodec(tok)
    pairs = tiny_models.PAIRS
    # the tiny corpus says "People in France speak with people in Paris": a neighbour answered by Paris
    records = [CounterFactRecord(case_id=i, subject=c, prompt="The capital of {} is", target_new=new, target_true=k,
                                 paraphrase_prompts=(f"{k} is a city in {c}. The capital of {c} is", f"{c}'s capital is"),
                                 neighborhood_prompts=(f"People in {c} speak with people in", "The capital of Norway is"))
               for i, ((c, k), new) in enumerate([(pairs[0], "Reykjavik"), (pairs[3], "Oslo"), (pairs[5], "Rome")])]
    write(tmp_path / "cf.json", records)
    assert load(tmp_path / "cf.json").records == tuple(records)
    got, _ = measure_counterfact(model, codec, records)

    def p(prompt, target):
        logp, tids = _ref_logp(model, tok, prompt, target)
        return math.exp(sum(logp[j, t].item() for j, t in enumerate(tids)) / len(tids))

    groups = {"efficacy": lambda r: [r.rewrite_prompt], "paraphrase": lambda r: r.paraphrase_prompts,
              "neighborhood": lambda r: r.neighborhood_prompts}
    for group, prompts in groups.items():
        sign = -1 if group == "neighborhood" else 1
        margins = [[sign * (p(q, r.target_new) - p(q, r.target_true)) for q in prompts(r)] for r in records]
        assert got[f"{group}_score"] == pytest.approx(sum(sum(m > 0 for m in ms) / len(ms) for ms in margins) / 3,
                                                      abs=1e-4)
        assert got[f"{group}_magnitude"] == pytest.approx(sum(sum(ms) / len(ms) for ms in margins) / 3, abs=1e-4)
    assert got["probes"] == {"efficacy": 3, "paraphrase": 6, "neighborhood": 6}

    zs = [ZsreRecord(case_id=i, subject=c, src=f"The capital of {c} is", rephrase=f"{c}'s capital is", alt=new,
                     answers=(k,), loc=f"People in {c} speak with people in", loc_ans=k)
          for i, ((c, k), new) in enumerate([(pairs[0], "Reykjavik"), (pairs[2], "Madrid")])]
    before, reference = measure_zsre(model, codec, zs)
    assert before["locality_acc"] is None

    def acc(prompt, target, m=model):
        logp, tids = _ref_logp(m, tok, prompt, target)
        return [int(logp[j].argmax()) for j in range(len(tids))], tids

    def token_acc(field):
        hits = [acc(getattr(r, field), r.alt) for r in zs]
        return sum(sum(a == t for a, t in zip(top, tids, strict=True)) / len(tids) for top, tids in hits) / 2

    assert before["rewrite_acc"] == pytest.approx(token_acc("src"), abs=1e-4)
    assert before["rephrase_acc"] == pytest.approx(token_acc("rephrase"), abs=1e-4)
    # locality: the same model agrees with itself; a perturbed one as often as its argmaxes say
    same, _ = measure_zsre(model, codec, zs, reference)
    assert same["locality_acc"] == 1.0 and same["locality_exact_match"] == 1.0
    pre = [acc(r.loc, r.loc_ans)[0] for r in zs]
    torch.manual_seed(1)
    with torch.no_grad():
        for w in model.transformer.h[1].mlp.c_proj.parameters():
            w.add_(torch.randn_like(w) * 0.5)
    after, _ = measure_zsre(model, codec, zs, reference)
    post = [acc(r.loc, r.loc_ans)[0] for r in zs]
    want = sum(sum(a == b for a, b in zip(x, y, strict=True)) / len(x) for x, y in zip(pre, post, strict=True)) / 2
    assert want < 1 and after["locality_acc"] == pytest.approx(want, abs=1e-4)


def test_evaluate_edits_a_tiny_model_in_one_batch(tmp_path, model_cache):
    records = [CounterFactRecord(case_id=f"t{i}", subject=c, prompt="The capital of {} is", target_new=new,
                                 target_true=k, paraphrase_prompts=(f"{c}'s capital is",),
                                 neighborhood_prompts=(f"People in {c} speak with people in",))
               for i, ((c, k), new) in enumerate([(tiny_models.PAIRS[0], "Rome"), (tiny_models.PAIRS[3], "Oslo")])]
    write(tmp_path / "cf.json", records)
    em = tiny_models.editable("gpt2")
    out = evaluate(em, load(tmp_path / "cf.json"), method="memit")
    assert out["edits"] == 2 and out["batch_size"] == 2 and len(em.manifest) == 1  # one MEMIT batch
    assert out["after"]["efficacy_score"] == 1.0 and out["after"]["efficacy_exact_match"] == 1.0
    assert out["after"]["efficacy_magnitude"] > out["before"]["efficacy_magnitude"]


def test_subject_keys_need_the_subject_in_the_prompt(tmp_path):
    rec = ZsreRecord(case_id=0, subject="Sverige", src="The capital of Sweden is", rephrase="Sweden's capital is",
                     alt="Oslo", answers=("Stockholm",), loc="The capital of Spain is", loc_ans="Madrid")
    write(tmp_path / "z.json", [rec])
    em = tiny_models.editable("gpt2", key_position="subject_last")
    with pytest.raises(DatasetError) as exc:
        evaluate(em, load(tmp_path / "z.json"), method="memit")
    assert "record 0" in exc.value.message and "'src'" in exc.value.message and "'Sverige'" in exc.value.message
    assert em.manifest == []
