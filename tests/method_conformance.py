"""The conformance suite every editing method runs (as every KG store runs the store suite).

A method's test class subclasses :class:`MethodConformance` and names ``method``. Each test builds
tiny random models (``tests/tiny_models.py``) of every supported architecture with each kind of
tokenizer and each key position, and checks what any editing method must guarantee:

* ``compute`` leaves the model bit for bit as it was (weights, codebook, outputs);
* ``apply`` moves the edited prompt towards its target (and, with keys at the prompt's last
  token, makes greedy generation say it), and undo restores every probe's outputs;
* save → load in a fresh process state gives identical outputs;
* half precision (bf16, fp16) edits with fp32 master weights.
"""

from __future__ import annotations

import pytest
import torch

from editor import arch
from editor.probe import fact_nll_at_targets, greedy, target_logits
from editor.request import Request
from editor.verbalize import Prompt
from tests import tiny_models as tm

EDIT = Prompt("The capital of France is", " Berlin", "France")
PROBES = [Prompt(f"The capital of {c} is", f" {k}", c) for c, k in tm.PAIRS[1:]] + \
         [Prompt(f"{k} is a city in", f" {c}", k) for c, k in tm.PAIRS] + \
         [Prompt("People in France speak with people in", " Paris", "France")]
MATRIX = [(a, t, k) for a in sorted(arch.ARCHITECTURES) for t in tm.TOKENIZER_KINDS for k in ("last", "subject_last")]


def logits(em, prompts=PROBES) -> torch.Tensor:
    with torch.no_grad():
        return target_logits(em.model, em.codec.encode(prompts)).float()


def nll(em, prompt: Prompt) -> float:
    enc = em.codec.encode([prompt])
    with torch.no_grad():
        return float(fact_nll_at_targets(em.model, enc, torch.zeros(1, dtype=torch.long), 1)[0])


def weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _id(case) -> str:
    return "-".join(case)


class MethodConformance:
    method: str
    #: MEMIT hyperparameters the suite runs with (a method's option is a subclass with its own)
    memit: dict = {}

    def editable(self, *args, **kw):
        return tm.editable(*args, memit=self.memit, **kw)

    @pytest.mark.parametrize("case", MATRIX, ids=_id)
    def test_compute_leaves_the_model_then_apply_edits_and_undo_restores(self, case):
        name, kind, key_position = case
        em = self.editable(name, kind, key_position=key_position)
        before_w, before_out = weights(em.model), logits(em, [EDIT, *PROBES])
        book = (len(em.grace.codebook), em.grace.codebook.version)
        nll_before = nll(em, EDIT)

        payload = em.compute(self.method, [Request.of([EDIT])], edit_id="e1")
        assert all(torch.equal(before_w[n], p) for n, p in em.model.named_parameters()), "compute changed weights"
        assert (len(em.grace.codebook), em.grace.codebook.version) == book, "compute changed the codebook"
        assert torch.equal(logits(em, [EDIT, *PROBES]), before_out), "compute changed outputs"

        record = em.apply("e1", self.method, [Request.of([EDIT])], payload)
        assert record.edit_id == "e1" and record.method == self.method
        after = nll(em, EDIT)
        # a random model's logits are bounded (LayerNorm times 0.02-scale embeddings): the target
        # can become the greedy answer but not a confident one, so no NLL level is asserted; and a
        # random model does not retrieve at the subject, so subject_last keys need not move it
        if key_position == "last":
            assert after < nll_before, f"the edit moved the prompt away from its target ({nll_before} -> {after})"
        self.check_edit(em, payload, key_position)
        self.check_scope(em, before_w)

        em.undo("e1")
        assert em.edit_ids() == []
        assert (logits(em, [EDIT, *PROBES]) - before_out).abs().max() <= 1e-4
        assert nll(em, EDIT) == pytest.approx(nll_before, abs=1e-3)

    def check_scope(self, em, before_w) -> None:
        """What the method may change (MEMIT: the edited projections; GRACE: no weight)."""

    def check_edit(self, em, payload, key_position: str) -> None:
        """What the method guarantees about an applied edit; by default, that greedy generation
        now gives the target."""
        assert greedy(em.model, em.codec, [EDIT])[0] == [True]

    @pytest.mark.parametrize("case", [(a, t) for a in sorted(arch.ARCHITECTURES) for t in tm.TOKENIZER_KINDS], ids=_id)
    def test_save_then_load_is_identical(self, case, tmp_path):
        name, kind = case
        em = self.editable(name, kind, state_dir=tmp_path / "state")
        em.edit("e1", [Request.of([EDIT])], self.method)
        em.edit("e2", [Request.of([PROBES[0]], " Oslo")], self.method)
        live = logits(em, [EDIT, *PROBES])
        again = self.editable(name, kind, state_dir=tmp_path / "state")   # a fresh base model, same seed
        assert again.edit_ids() == ["e1", "e2"]
        assert (logits(again, [EDIT, *PROBES]) - live).abs().max() <= 1e-5
        assert greedy(again.model, again.codec, [EDIT]) == greedy(em.model, em.codec, [EDIT])
        again.undo("e1")
        third = self.editable(name, kind, state_dir=tmp_path / "state")
        assert third.edit_ids() == ["e2"]
        # ``again`` is base + e1 + e2 - e1 in fp32, ``third`` base + e2: the same up to the rounding
        # of a subtraction (random models get large deltas: |ΔW| ≫ |W|, so an ulp of ΔW shows)
        diff = float((logits(third, [EDIT, *PROBES]) - logits(again, [EDIT, *PROBES])).abs().max())
        assert diff <= 2e-3, diff

    @pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
    @pytest.mark.parametrize("case", [("llama", "sentencepiece"), ("gpt2", "bytebpe")], ids=_id)
    def test_half_precision(self, case, dtype):
        name, kind = case
        em = self.editable(name, kind, dtype=dtype)
        nll_before = nll(em, EDIT)
        before = logits(em, [EDIT, *PROBES])
        em.edit("e1", [Request.of([EDIT])], self.method)
        assert nll(em, EDIT) < nll_before
        assert greedy(em.model, em.codec, [EDIT])[0] == [True]
        assert all(p.dtype == dtype for p in em.model.parameters())
        assert all(m.dtype == torch.float32 for m in em.weights._masters.values())
        em.undo("e1")
        # one rounding of the fp32 master back to half precision, not a drift
        assert (logits(em, [EDIT, *PROBES]) - before).abs().max() <= 0.05 * before.abs().max()
