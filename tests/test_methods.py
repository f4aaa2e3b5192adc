"""MEMIT and GRACE through the method conformance suite (tests/method_conformance.py)."""

from __future__ import annotations

import pytest
import torch

from editor import arch
from editor.hooks import capture_output
from editor.memit.keys import locate, run
from editor.request import Request
from editor.methods import registry
from editor.verbalize import Prompt
from tests.method_conformance import EDIT, MethodConformance, _id


def test_every_registered_method_runs_the_suite():
    suites = {cls.method for cls in MethodConformance.__subclasses__()}
    assert suites == set(registry())


class TestMemit(MethodConformance):
    method = "memit"

    def check_edit(self, em, payload, key_position):
        """MEMIT's guarantee is at its last edited layer: at each key position, the hidden state
        moves to the target residual z its optimisation found. Whether the answer then flips depends
        on where the model retrieves; with keys at the prompt's last token it must."""
        layers = em.hp.memit.resolve_layers(arch.num_layers(em.model))
        rows = locate(em.codec, [Request.of([EDIT])], em.hp.memit, "cpu")
        expected = rows.enc.subject_last if key_position == "subject_last" else rows.enc.prompt_last
        assert int(rows.entry_pos[0]) == int(expected[0])
        seen: list[torch.Tensor] = []
        block = em.model.get_submodule(arch.arch_of(em.model).block_path(layers[-1]))
        with torch.no_grad(), capture_output(block, seen):
            run(em.model, rows.enc)
        now = seen[0][rows.entry_row, rows.entry_pos].float()
        assert payload.stats["written"] >= 0.5
        assert torch.allclose(now, payload.targets, atol=(1 - payload.stats["written"]) * float(payload.targets.norm()) + 1e-3)
        if key_position == "last":
            super().check_edit(em, payload, key_position)


class TestGrace(MethodConformance):
    method = "grace"

    def check_scope(self, em, before_w):
        assert all(torch.equal(before_w[n], p) for n, p in em.model.named_parameters()), "GRACE changed weights"
        assert len(em.grace.codebook) == 1


class TestMemitPreservingEdits(TestMemit):
    """MEMIT with every live edit's keys held in the solve (``preserve_edits``), on one
    architecture per tokenizer kind and key position (the option changes the solve only, which
    every architecture shares; the full matrix runs for plain MEMIT)."""

    memit = {"preserve_edits": True}
    SOME = [("gpt2", "bytebpe", "last"), ("llama", "sentencepiece", "subject_last")]

    @pytest.mark.parametrize("case", SOME, ids=_id)
    def test_compute_leaves_the_model_then_apply_edits_and_undo_restores(self, case):
        super().test_compute_leaves_the_model_then_apply_edits_and_undo_restores(case)

    @pytest.mark.parametrize("case", [c[:2] for c in SOME], ids=_id)
    def test_save_then_load_is_identical(self, case, tmp_path):
        super().test_save_then_load_is_identical(case, tmp_path)

    @pytest.mark.parametrize("dtype", [torch.bfloat16], ids=str)
    @pytest.mark.parametrize("case", [("llama", "sentencepiece")], ids=_id)
    def test_half_precision(self, case, dtype):
        super().test_half_precision(case, dtype)


def test_preserved_keys_follow_the_live_edits(tmp_path):
    """The accumulated ``K_p K_pᵀ`` is always the sum over the edits in the model: after apply,
    undo, and a reload from disk."""
    from tests import tiny_models as tm

    em = tm.editable("gpt2", "bytebpe", state_dir=tmp_path / "s", memit={"preserve_edits": True})
    em.edit("e1", [Request.of([EDIT])], "memit")
    em.edit("e2", [Request.of([Prompt("The capital of Spain is", " Rome", "Spain")])], "memit")
    pk = em.methods["memit"].preserved
    for layer, d in em.deltas["e1"][0].layers.items():
        k1, k2 = d.keys.double(), em.deltas["e2"][0].layers[layer].keys.double()
        assert torch.allclose(pk.gram(layer), k1 @ k1.T + k2 @ k2.T, rtol=1e-6, atol=1e-8)
    again = tm.editable("gpt2", "bytebpe", state_dir=tmp_path / "s", memit={"preserve_edits": True})
    for layer in pk.grams:
        assert torch.allclose(again.methods["memit"].preserved.gram(layer), pk.gram(layer))
    em.undo("e2")
    em.undo("e1")
    assert pk.grams == {}


def test_preserving_edits_keeps_an_earlier_edit_in_place():
    """With ``preserve_edits``, the second edit's update barely moves the first edit's keys at any
    layer; without it, it moves them by more (same edits, same model)."""
    from tests import tiny_models as tm

    second = Request.of([Prompt("The capital of Spain is", " Rome", "Spain")])
    moved = {}
    for on in (False, True):
        em = tm.editable("gpt2", "bytebpe", memit={"preserve_edits": on})
        em.edit("e1", [Request.of([EDIT])], "memit")
        d2 = em.compute("memit", [second])
        first = em.deltas["e1"][0]
        moved[on] = max(float((d2.layers[l].dense() @ first.layers[l].keys).norm() / first.layers[l].keys.norm())
                        for l in d2.layers)
    assert moved[True] < 0.25 * moved[False], moved


def test_nullspace_update_leaves_the_corpus_keys_alone():
    """AlphaEdit's projection guarantees ``ΔW v = 0`` for every direction ``v`` the key statistics
    use (eigenvalue ≥ share × the largest), so what the layer stores there is untouched; the plain
    solve writes through them."""
    from tests import tiny_models as tm

    share = 1e-2
    touched = {}
    for on in (False, True):
        em = tm.editable("gpt2", "bytebpe", memit={"nullspace": share if on else 0.0})
        layers = em.hp.memit.resolve_layers(arch.num_layers(em.model))
        d = em.compute("memit", [Request.of([EDIT])])
        moms = em.key_statistics(layers)
        worst = 0.0
        for l in layers:
            vals, vecs = torch.linalg.eigh(moms[l])
            used = vecs[:, vals >= share * vals.max()]
            dw = d.layers[l].dense().double()
            worst = max(worst, float((dw @ used).norm() / dw.norm()))
        touched[on] = worst
    assert touched[True] < 1e-6 and touched[True] < 1e-3 * touched[False], touched
