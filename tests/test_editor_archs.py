"""MEMIT and GRACE through every supported architecture, on tiny random configs (no download).

Each test builds a 4-layer model of the architecture with random weights and a BPE tokenizer
trained on a few sentences, then checks: the edited prompt now gives the target, ``compute``
leaves the weights bit-for-bit unchanged, ``apply`` touches only the MLP projections of the edited
layers (GRACE touches no weight at all), and undo brings the outputs back.
"""

from __future__ import annotations

import pytest
import torch
import transformers as T

from editor import arch
from editor import hparams as H
from editor.knowledge import train_tokenizer
from editor.loading import wrap
from editor.memit import Request
from editor.probe import greedy, target_logits
from editor.session import EditableModel
from editor.verbalize import Prompt
from editor.weights import MasterWeights

PAIRS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
         ("Austria", "Vienna"), ("Poland", "Warsaw")]
CORPUS = [f"The capital of {c} is {k}" for c, k in PAIRS] * 20 + \
         [f"{k} is a city in {c}" for c, k in PAIRS] * 10


def _configs(vocab: int, eos: int) -> dict:
    common = dict(vocab_size=vocab, eos_token_id=eos, bos_token_id=eos)
    llama_like = dict(num_hidden_layers=4, hidden_size=64, num_attention_heads=4, intermediate_size=128, **common)
    return {
        "gpt2": (T.GPT2Config(n_layer=4, n_embd=64, n_head=4, n_positions=64, **common), T.GPT2LMHeadModel),
        "gptj": (T.GPTJConfig(n_layer=4, n_embd=64, n_head=4, n_positions=64, rotary_dim=8, **common),
                 T.GPTJForCausalLM),
        "gpt_neox": (T.GPTNeoXConfig(num_hidden_layers=4, hidden_size=64, num_attention_heads=4,
                                     intermediate_size=128, **common), T.GPTNeoXForCausalLM),
        "llama": (T.LlamaConfig(num_key_value_heads=4, **llama_like), T.LlamaForCausalLM),
        "mistral": (T.MistralConfig(num_key_value_heads=2, **llama_like), T.MistralForCausalLM),
        "qwen2": (T.Qwen2Config(num_key_value_heads=2, **llama_like), T.Qwen2ForCausalLM),
    }


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(CORPUS, 400)


def tiny(tokenizer, name: str, dtype=torch.float32):
    cfg, cls = _configs(len(tokenizer), tokenizer.eos_token_id)[name]
    torch.manual_seed(0)
    model = cls(cfg).to(dtype).eval()
    loaded = wrap(model, tokenizer, name=f"tiny-{name}")
    hp = H.load(loaded.hparams_name)
    # Random weights recall nothing at the subject, and their activations are not those of a
    # trained model: last-token keys, a loose clamp and no KL term make the edit reachable.
    hp = H.Hparams(hp.name, hp.memit.replace(key_position="last", z_steps=150, clamp_norm_factor=100.0,
                                             kl_factor=0.0, weight_decay=0.0, mom2_weight=10.0),
                   hp.grace.replace(epsilon=1e-3, value_steps=200), hp.notes)
    return EditableModel(loaded, None, corpus=CORPUS, hparams=hp)


EDIT = Prompt("The capital of France is", " Berlin", "France")
OTHER = Prompt("The capital of Poland is", " Warsaw", "Poland")


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _logits(em, prompts):
    with torch.no_grad():
        return target_logits(em.model, em.codec.encode(prompts))


@pytest.mark.parametrize("name", sorted(arch.ARCHITECTURES))
def test_memit_edit_through_architecture(tokenizer, name):
    em = tiny(tokenizer, name)
    assert arch.arch_of(em.model).model_type == name
    assert greedy(em.model, em.codec, [EDIT])[0] == [False]
    before = _snapshot(em.model)
    logits_before = _logits(em, [EDIT, OTHER])

    delta = em.compute_memit([Request.of([EDIT])])
    assert all(torch.equal(before[n], p) for n, p in em.model.named_parameters()), "compute changed weights"

    record = em.apply_memit("e1", [Request.of([EDIT])], delta)
    assert greedy(em.model, em.codec, [EDIT])[0] == [True]
    layers = em.hp.memit.resolve_layers(arch.num_layers(em.model))
    edited = {f"{arch.arch_of(em.model).mlp_out_path(layer)}.weight" for layer in layers}
    changed = {n for n, p in em.model.named_parameters() if not torch.equal(before[n], p)}
    assert changed == edited
    assert sorted(record.deltas[0].layers) == layers

    em.undo("e1")
    assert (_logits(em, [EDIT, OTHER]) - logits_before).abs().max() <= 1e-4


@pytest.mark.parametrize("name", sorted(arch.ARCHITECTURES))
def test_grace_edit_through_architecture(tokenizer, name):
    em = tiny(tokenizer, name)
    before = _snapshot(em.model)
    other_before = greedy(em.model, em.codec, [OTHER], targets=[OTHER.target])[1]
    logits_other = _logits(em, [OTHER])

    em.edit("g1", [Request.of([EDIT])], "grace")
    assert greedy(em.model, em.codec, [EDIT])[0] == [True]
    assert all(torch.equal(before[n], p) for n, p in em.model.named_parameters()), "GRACE changed weights"
    assert greedy(em.model, em.codec, [OTHER], targets=[OTHER.target])[1] == other_before
    assert torch.equal(_logits(em, [OTHER]), logits_other)  # outside every radius: untouched

    em.undo("g1")
    assert len(em.grace.codebook) == 0
    assert greedy(em.model, em.codec, [EDIT])[0] == [False]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_keeps_small_deltas(tokenizer, dtype):
    """Deltas far below half precision's resolution still add up (fp32 master weights)."""
    em = tiny(tokenizer, "gpt2", dtype)
    weights = MasterWeights(em.model)
    layer = 1
    start = weights.master(layer).clone()
    w = weights.param(layer)
    out_dim, in_dim = (w.shape[1], w.shape[0])  # GPT-2 Conv1D stores (in, out)

    class Tiny:
        u = torch.full((out_dim, 1), 1e-4)
        v = torch.full((in_dim, 1), 1.0)

        def dense(self, dtype, device=None):
            return (self.u @ self.v.T).to(dtype)

    for _ in range(100):
        weights.add(layer, Tiny())
    master = weights.master(layer)
    assert torch.allclose(master, start + 1e-2, atol=1e-6)  # 100 x 1e-4, all kept in fp32
    assert torch.equal(w.data, master.to(dtype))
    assert torch.allclose(w.data.float(), start + 1e-2, atol=2e-4)
    naive = start.to(dtype)
    for _ in range(100):
        naive = naive + torch.tensor(1e-4, dtype=dtype)
    lost = (naive.float() - (start + 1e-2)).abs().max()
    ours = (w.data.float() - (start + 1e-2)).abs().max()  # one rounding, not a hundred
    assert lost > 3 * ours, "half precision alone would have kept these deltas anyway"


def test_memit_on_bf16_model_edits(tokenizer):
    em = tiny(tokenizer, "llama", torch.bfloat16)
    em.edit("e1", [Request.of([EDIT])], "memit")
    assert greedy(em.model, em.codec, [EDIT])[0] == [True]
    assert em.model.model.layers[0].mlp.down_proj.weight.dtype == torch.bfloat16
