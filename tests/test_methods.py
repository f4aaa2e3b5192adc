"""MEMIT and GRACE through the method conformance suite (tests/method_conformance.py)."""

from __future__ import annotations

import torch

from editor import arch
from editor.hooks import capture_output
from editor.memit.keys import locate, run
from editor.request import Request
from editor.methods import registry
from tests.method_conformance import EDIT, MethodConformance


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
