"""The editor's shared parts on tiny real models: fp32 masters, the base model behind the edits,
hooks that leave accelerate's dispatch intact, hyperparameter validation, GRACE below MEMIT."""

from __future__ import annotations

import pytest
import torch

from editor import arch
from editor import hparams as H
from editor.hooks import frozen_prefix
from editor.request import Request
from editor.validation import HparamsError
from editor.verbalize import Prompt
from editor.weights import MasterWeights
from tests import tiny_models as tm

EDIT = Prompt("The capital of France is", " Berlin", "France")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_half_precision_keeps_small_deltas(dtype):
    """Deltas far below half precision's resolution still add up (fp32 master weights)."""
    model, _ = tm.model("gpt2", "bytebpe", dtype)
    weights = MasterWeights(model)
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
    naive = start.to(dtype)
    for _ in range(100):
        naive = naive + torch.tensor(1e-4, dtype=dtype)
    lost = (naive.float() - (start + 1e-2)).abs().max()
    ours = (w.data.float() - (start + 1e-2)).abs().max()  # one rounding, not a hundred
    assert lost > 3 * ours, "half precision alone would have kept these deltas anyway"
    with weights.base():
        assert torch.equal(w.data, start.to(dtype))      # the base is there, bit for bit
    assert torch.equal(w.data, master.to(dtype))         # and the edits come back


def test_a_tokens_per_dimension_budget_reads_only_the_texts_it_needs(tmp_path):
    """``cov_tokens_per_dim``: the statistics read the fewest sampled texts that hold that many
    tokens per key dimension — the same moment as computing on exactly those texts."""
    from editor.covariance import CovarianceCache, compute_moments, enough_texts

    em = tm.editable("gpt2")
    layers = [1, 2]
    width = 4 * em.model.config.n_embd  # GPT-2's MLP projection reads d_mlp-wide keys
    corpus = [f"{t} {i}" for i, t in enumerate(tm.CORPUS)]  # distinct texts
    chosen = enough_texts(corpus, em.codec, 2 * width, max_len=64)
    counted = sum(len(em.codec.ids(t)) for t in chosen)
    assert counted >= 2 * width and counted - len(em.codec.ids(chosen[-1])) < 2 * width + 64
    assert len(chosen) < len(corpus) and chosen == [t for t in corpus if t in set(chosen)]  # corpus order
    assert enough_texts(corpus, em.codec, 10 ** 9, max_len=64) == corpus
    cache = CovarianceCache(tmp_path / "stats")
    got = cache.moments(em.model, em.codec, "fp", layers, corpus, samples=10_000, tokens_per_dim=2)
    want = compute_moments(em.model, em.codec, layers, chosen)
    for layer in layers:
        assert torch.allclose(got[layer], want[layer], rtol=1e-6, atol=1e-9)
    assert all(f"-{len(chosen)}.pt" in p.name for p in (tmp_path / "stats" / "fp").glob("*.pt"))


def test_key_statistics_are_computed_on_the_base_model(tmp_path):
    """Statistics computed with edits (MEMIT deltas, GRACE entries) in the model equal those of
    the unedited model: they are cached under the base fingerprint."""
    em = tm.editable("llama", "sentencepiece")
    layers = em.hp.memit.resolve_layers(arch.num_layers(em.model))
    fresh = tm.editable("llama", "sentencepiece")
    fresh.stats = type(fresh.stats)(tmp_path / "fresh-stats")  # computed now, not an older run's cache entry
    want = fresh.key_statistics(layers)
    em.edit("m1", [Request.of([EDIT])], "memit")
    em.edit("g1", [Request.of([Prompt("Paris is a city in", " Norway", "Paris")])], "grace")
    em.stats = type(em.stats)(em.stats.root.parent / "other-stats")   # no cache: compute again
    got = em.key_statistics(layers)
    for layer in layers:
        assert torch.allclose(got[layer], want[layer], rtol=1e-6, atol=1e-9)
    assert em.grace.enabled and len(em.grace.codebook) == 1


def test_frozen_prefix_keeps_accelerate_hooks():
    accelerate = pytest.importorskip("accelerate.hooks")

    class Count(accelerate.ModelHook):
        calls = 0

        def pre_forward(self, module, *args, **kwargs):
            Count.calls += 1
            return args, kwargs

    model, tok = tm.model("llama", "sentencepiece")
    blocks = [model.get_submodule(arch.arch_of(model).block_path(i)) for i in range(2)]
    for b in blocks:
        accelerate.add_hook_to_module(b, Count())
    ids = torch.tensor([tok("The capital of France is")["input_ids"]])
    with torch.no_grad():
        seen = []
        h = blocks[-1].register_forward_hook(lambda m, a, o: seen.append(o))
        model(input_ids=ids)
        h.remove()
        n = Count.calls
        hidden = seen[0][0] if isinstance(seen[0], tuple) else seen[0]
        with frozen_prefix(blocks, seen[0], hidden):
            model(input_ids=ids)
        assert Count.calls == n                       # skipped inside
        model(input_ids=ids)
    assert Count.calls == n + 2                        # and dispatched through the hook again after
    assert all(hasattr(b, "_hf_hook") and "forward" in b.__dict__ for b in blocks)


@pytest.mark.parametrize(("section", "field", "value", "says"), [
    ("memit", "key_position", "subject-last", "one of 'subject_last', 'last'"),
    ("memit", "z_span", "tokens", "one of 'key', 'answer'"),
    ("memit", "mom2_weight", -1.0, "a number > 0"),
    ("memit", "layers", [], "non-empty list"),
    ("memit", "z_steps", "many", "a number"),
    ("grace", "distance", "manhattan", "one of 'euclidean', 'cosine'"),
    ("grace", "epsilon", 0, "a number > 0"),
    ("grace", "radius", 1.0, "a known field"),
])
def test_a_wrong_hyperparameter_names_field_value_and_what_is_allowed(tmp_path, section, field, value, says):
    import yaml

    raw = yaml.safe_load((H.HERE / "gpt2.yaml").read_text())
    raw[section][field] = value
    f = tmp_path / "gpt2.yaml"
    f.write_text(yaml.safe_dump(raw))
    with pytest.raises(HparamsError) as err:
        H.load("gpt2", f)
    assert f"{section}.{field}" in err.value.message and repr(value) in err.value.message
    assert says in err.value.message and str(f) in err.value.message


@pytest.mark.parametrize("name", H.available())
def test_every_shipped_file_loads_and_keeps_grace_below_memit(name):
    hp = H.load(name)
    for depth in (4, 12, hp.memit.reference_depth):
        hp.check_depth(depth)
        assert hp.grace.resolve_layer(depth) <= min(hp.memit.resolve_layers(depth))


def test_grace_above_memit_is_refused():
    hp = tm.hparams("gpt2")
    bad = H.Hparams(hp.name, hp.memit, hp.grace.replace(layer=3), hp.notes)
    with pytest.raises(HparamsError, match="grace.layer = 3"):
        bad.check_depth(4)
    from editor.loading import wrap
    from editor.session import EditableModel

    model, tok = tm.model("gpt2", "bytebpe")
    with pytest.raises(HparamsError):
        EditableModel(wrap(model, tok, name="tiny"), corpus=tm.CORPUS, hparams=bad)


def test_memit_edits_leave_grace_keys_and_answers_alone():
    """Measured: with GRACE at MEMIT's first layer, MEMIT batches written after GRACE edits move
    none of GRACE's keys, and its edits keep their answers."""
    em = tm.editable("qwen2", "sentencepiece")
    g = [Prompt("The capital of France is", " Oslo", "France"), Prompt("Paris is a city in", " Spain", "Paris")]
    em.edit("g1", [Request.of([p]) for p in g], "grace")
    keys_before = em.grace.codebook.keys.clone()
    em.edit("m1", [Request.of([Prompt(f"The capital of {c} is", " Rome", c)]) for c, _ in tm.PAIRS[2:6]], "memit")
    from editor.grace.values import compute

    again, _ = compute(em.grace, em.codec, [("probe", g, " x")])   # keys read again on the edited model
    assert torch.allclose(again[0].keys, keys_before, atol=1e-5)
    from editor.probe import greedy

    assert greedy(em.model, em.codec, g)[0] == [True, True]
