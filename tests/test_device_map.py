"""Models bigger than one device: MEMIT on models dispatched by accelerate (blocks split over
devices with hooks, weights offloaded to CPU memory or disk), the loader's ``device_map``, and
key statistics that stream and refuse, before starting, what will not fit in memory.

All on CPU, with tiny real models and real accelerate dispatch (no mocks): a "device" here is the
CPU behind an accelerate hook, which exercises the same code paths a GPU split does.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch

from editor import arch, placement
from editor.covariance import CovarianceCache, compute_moments
from editor.loading import fingerprint, load
from editor.memory import BUDGET_ENV, NotEnoughMemoryError
from editor.request import Request
from editor.verbalize import Prompt
from oneedit.core import OneEditError
from tests import tiny_models as tm

accelerate = pytest.importorskip("accelerate")

EDIT = Prompt("The capital of France is", " Berlin", "France")
FAST = {"z_steps": 8}


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Statistics and models cached under the test's own folder, never the user's cache."""
    monkeypatch.setenv("ONEEDIT_CACHE", str(tmp_path / "cache"))


def _logits(model, tok, text="The capital of France is"):
    ids = torch.tensor([tok(text)["input_ids"]])
    with torch.no_grad():
        return model(input_ids=ids).logits[0, -1].float()


def _split_gpt2(model, tmp_path, *, disk: tuple[int, ...] = ()):
    """Every block behind its own accelerate hook ("cpu" devices); blocks in ``disk`` offloaded
    to accelerate's offload folder."""
    dm = {"transformer.wte": "cpu", "transformer.wpe": "cpu", "transformer.drop": "cpu",
          "transformer.ln_f": "cpu", "lm_head": "cpu"}
    dm |= {f"transformer.h.{i}": "disk" if i in disk else "cpu" for i in range(4)}
    return accelerate.dispatch_model(model, dm, offload_dir=str(tmp_path / "offload"), force_hooks=True)


def _same_edit(plain, other, tmp_path):
    """The same MEMIT delta written and the same answer after it, on two models (each computes
    its own key statistics)."""
    other.stats = CovarianceCache(tmp_path / "other-stats")
    reqs = [Request.of([EDIT])]
    a, b = plain.compute_memit(reqs), other.compute_memit(reqs)
    assert list(a.layers) == list(b.layers)
    for layer in a.layers:
        da, db = a.layers[layer].dense(), b.layers[layer].dense()
        assert (da - db).norm() <= 1e-5 * da.norm(), f"layer {layer}"
    tok = plain.codec.tokenizer
    before = _logits(other.model, tok)
    plain.apply_memit("m1", reqs, a)
    other.apply_memit("m1", reqs, b)
    after = _logits(other.model, tok)
    assert (after - before).abs().max() > 1e-2                 # the edit reached the weights a pass reads
    assert torch.allclose(_logits(plain.model, tok), after, atol=1e-4)
    assert plain.holds(reqs) == other.holds(reqs)


def test_memit_on_blocks_split_over_devices_matches_the_plain_model(tmp_path):
    """Hooks on every block, the top block offloaded to disk (not edited): same fingerprint,
    same delta, same edited answer, and undo restores the outputs."""
    plain = tm.editable("gpt2", memit=FAST)
    em = tm.editable("gpt2", memit=FAST)
    before = _logits(em.model, em.codec.tokenizer)
    _split_gpt2(em.model, tmp_path, disk=(3,))
    assert placement.is_dispatched(em.model)
    assert placement.storage(em.model.get_submodule("transformer.h.3.mlp.c_proj")) == placement.OFFLOADED_DISK
    assert fingerprint(em.model) == plain.loaded.fingerprint
    _same_edit(plain, em, tmp_path)
    em.undo("m1")
    assert torch.allclose(_logits(em.model, em.codec.tokenizer), before, atol=1e-5)


def test_memit_edits_weights_offloaded_to_cpu_memory(tmp_path):
    """accelerate's CPU offload keeps every weight in a CPU state dict and loads it at each pass:
    the edit is written there (the parameters themselves are on ``meta``)."""
    plain = tm.editable("llama", "sentencepiece", memit=FAST)
    em = tm.editable("llama", "sentencepiece", memit=FAST)
    before = _logits(em.model, em.codec.tokenizer)
    accelerate.cpu_offload(em.model, execution_device=torch.device("cpu"))
    proj = em.model.get_submodule(arch.arch_of(em.model).mlp_out_path(1))
    assert proj.weight.device.type == "meta"
    assert placement.storage(proj) == placement.OFFLOADED_CPU
    assert fingerprint(em.model) == plain.loaded.fingerprint
    _same_edit(plain, em, tmp_path)
    em.undo("m1")
    assert torch.allclose(_logits(em.model, em.codec.tokenizer), before, atol=1e-5)


def test_an_edited_layer_offloaded_to_disk_is_refused_by_name(tmp_path):
    em = tm.editable("gpt2", memit=FAST)
    before = _logits(em.model, em.codec.tokenizer)
    _split_gpt2(em.model, tmp_path, disk=(2, 3))
    with pytest.raises(placement.OffloadedWeightError) as err:
        em.edit("m1", [Request.of([EDIT])])
    assert "transformer.h.2.mlp.c_proj" in err.value.message and "--max-memory" in err.value.hint
    assert "transformer.h.1" not in err.value.message  # layer 1 is resident: not named
    assert em.manifest == [] and torch.equal(_logits(em.model, em.codec.tokenizer), before)


@pytest.fixture
def saved_gpt2(tmp_path):
    model, tok = tm.model("gpt2", "bytebpe")
    path = tmp_path / "tiny-gpt2"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_loader_device_map_auto_from_a_local_directory(saved_gpt2, tmp_path):
    from editor.session import EditableModel

    plain = load(saved_gpt2)
    auto = load(saved_gpt2, device_map="auto")
    assert auto.fingerprint == plain.fingerprint and auto.device == torch.device("cpu")
    assert torch.equal(_logits(auto.model, auto.tokenizer), _logits(plain.model, plain.tokenizer))
    # a CPU budget too small for the model: accelerate puts it on disk (read from model.safetensors)
    tight = load(saved_gpt2, device_map="auto", max_memory="cpu=150KB", offload_folder=tmp_path / "off")
    assert placement.is_dispatched(tight.model) and tight.fingerprint == plain.fingerprint
    assert torch.allclose(_logits(tight.model, tight.tokenizer), _logits(plain.model, plain.tokenizer))
    em = EditableModel(tight, corpus=tm.CORPUS, hparams=tm.hparams("gpt2"))
    with pytest.raises(OneEditError, match=r"offloaded to disk.*transformer\.h\.1\.mlp\.c_proj"):
        em.edit("m1", [Request.of([EDIT])])


def test_device_map_needs_accelerate_and_says_how_to_get_it(saved_gpt2, monkeypatch):
    monkeypatch.setitem(sys.modules, "accelerate", None)  # as if it were not installed
    with pytest.raises(OneEditError) as err:
        load(saved_gpt2, device_map="auto")
    assert "pip install 'oneedit[big]'" in err.value.hint


def test_device_map_and_max_memory_are_checked(saved_gpt2, tmp_path):
    with pytest.raises(OneEditError, match="Unknown device map"):
        load(saved_gpt2, device_map="everywhere")
    with pytest.raises(OneEditError, match="Bad --max-memory"):
        load(saved_gpt2, device_map="auto", max_memory="cpu=lots")
    with pytest.raises(OneEditError, match="only applies with --device-map"):
        load(saved_gpt2, max_memory="cpu=1GiB")
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"": "cpu"}))
    assert load(saved_gpt2, device_map=str(mapping)).fingerprint == load(saved_gpt2).fingerprint


# -- key statistics ----------------------------------------------------------------------------------
def _direct_moments(model, codec, layers, texts):
    """The definition: every key of every text at once, float64."""
    spec = arch.arch_of(model)
    out = {}
    for layer in layers:
        keys = []
        h = model.get_submodule(spec.mlp_out_path(layer)).register_forward_pre_hook(
            lambda m, a: keys.append(a[0][0].double()))
        with torch.no_grad():
            for t in texts:
                model(input_ids=torch.tensor([codec.ids(t)]))
        h.remove()
        k = torch.cat(keys)
        out[layer] = k.T @ k / k.shape[0]
    return out


def test_statistics_stream_in_chunks_and_equal_the_definition():
    em = tm.editable("llama", "sentencepiece")
    texts = tm.CORPUS[::7]
    seen = []
    got = compute_moments(em.model, em.codec, [1, 2], texts, batch_size=5, chunk_tokens=7,
                          progress=lambda done, total: seen.append((done, total)))
    want = _direct_moments(em.model, em.codec, [1, 2], texts)
    for layer in (1, 2):
        assert got[layer].dtype == torch.float64
        # batches of padded rows and float32 products move the last bits only (measured: 3e-7)
        assert (got[layer] - want[layer]).norm() <= 1e-5 * want[layer].norm()
    total = sum(len(em.codec.ids(t)) for t in texts)
    assert seen[-1] == (total, total) and len(seen) == -(-len(texts) // 5)


def test_statistics_on_a_split_model_equal_the_plain_models(tmp_path):
    plain = tm.editable("gpt2")
    em = tm.editable("gpt2")
    _split_gpt2(em.model, tmp_path, disk=(2,))
    a = compute_moments(plain.model, plain.codec, [1, 2], tm.CORPUS)
    b = compute_moments(em.model, em.codec, [1, 2], tm.CORPUS)
    assert all(torch.allclose(a[k], b[k], rtol=1e-6, atol=1e-9) for k in (1, 2))


def test_statistics_that_do_not_fit_are_refused_before_starting(tmp_path, monkeypatch):
    """Two layers of d = 256 need 2 × 512 KiB of float64 sums, a factorisation's working copy and
    the moments kept on the CPU (with one batch's activations, ~15 MiB): a 1 MiB budget cannot
    hold that, 64 MiB can."""
    em = tm.editable("gpt2")
    cache = CovarianceCache(tmp_path / "stats", memory_budget="1MiB")
    with pytest.raises(NotEnoughMemoryError) as err:
        cache.moments(em.model, em.codec, em.loaded.fingerprint, [1, 2], tm.CORPUS, samples=1000)
    msg, hint = err.value.message, err.value.hint
    assert re.search(r"cpu: needs \d+\.\d MiB, 1\.0 MiB free", msg) and "256² float64" in msg
    assert "fewer layers" in hint and "--cov-samples" in hint and "--device-map" in hint
    assert not (tmp_path / "stats").exists()  # nothing computed, nothing cached
    # the environment variable sets the same cap for a whole session, on the edit's path
    monkeypatch.setenv(BUDGET_ENV, "1MiB")
    em.stats = CovarianceCache(tmp_path / "stats2")
    with pytest.raises(NotEnoughMemoryError):
        em.edit("m1", [Request.of([EDIT])])
    assert em.manifest == []
    monkeypatch.setenv(BUDGET_ENV, "64MiB")
    assert set(em.key_statistics([1, 2])) == {1, 2}


def test_a_large_corpus_is_sampled_with_a_seed_in_corpus_order():
    from editor.covariance import sample_texts

    texts = [f"text {i}" for i in range(1000)]
    a = sample_texts(texts, 100)
    assert a == sample_texts(texts, 100) and len(a) == 100 and len(set(a)) == 100
    assert a == sorted(a, key=lambda t: int(t.split()[1]))  # corpus order
    assert a != texts[:100] and sample_texts(texts, 5000) == texts


# -- the command line ---------------------------------------------------------------------------------
def test_cli_device_map_option_and_statistics_progress(saved_gpt2, small_world, tmp_path):
    """``--device-map``/``--max-memory`` on the model commands; ``--corpus`` statistics show a
    progress bar (tokens, time left) for people and nothing in --json mode."""
    from typer.testing import CliRunner

    from oneedit.cli import app
    from oneedit.workspace import Workspace

    ws, _ = Workspace.init(tmp_path / "ws", data=small_world)
    ws.close()
    corpus = tmp_path / "corpus.txt"
    texts = [f"{t} ({tmp_path.name})" for t in tm.CORPUS]  # a corpus no other test has statistics for
    corpus.write_text("\n".join(texts), encoding="utf-8")
    base = ["-w", str(tmp_path / "ws"), "--model", str(saved_gpt2)]
    runner = CliRunner()

    info = runner.invoke(app, ["model", "info", *base, "--device-map", "auto", "--json"])
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["architecture"] == "gpt2"
    bad = runner.invoke(app, ["model", "info", *base, "--device-map", "auto", "--max-memory", "gpu=9", "--json"])
    assert bad.exit_code == 1 and "gpu" in json.loads(bad.stdout)["message"]

    shown = runner.invoke(app, ["model", "edit", *base, "--corpus", str(corpus), "France", "capital", "Lyon",
                                "--id", "m1"])
    assert shown.exit_code == 0, shown.output
    assert "Key statistics" in shown.output and f"{sum(len(r) for r in _ids(saved_gpt2, texts)):,}" in shown.output
    quiet = runner.invoke(app, ["model", "edit", *base, "--corpus", str(corpus), "--cov-samples", "50", "France",
                                "capital", "Berlin", "--id", "m2", "--json"])
    assert quiet.exit_code == 0, quiet.output
    assert json.loads(quiet.stdout)["edit"] == "m2" and "Key statistics" not in quiet.stdout

    tight = runner.invoke(app, ["model", "edit", *base, "--corpus", str(corpus), "--device-map", "auto",
                                "--max-memory", "cpu=150KB", "France", "capital", "Ulm", "--json"])
    assert tight.exit_code == 1
    err = json.loads(tight.stdout)
    assert "transformer.h.1.mlp.c_proj" in err["message"] and "--max-memory" in err["hint"]


def _ids(path, texts):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    return [tok(t)["input_ids"][:64] for t in texts]


def test_singular_statistics_from_float32_products_still_factor():
    """Keys from a 12-dimensional subspace with a dominant direction: their float32 second moment
    is indefinite in its null space by rounding, so the 1e-6 ridge alone does not factor it; the
    ridge grows until it does, and the factor reproduces the matrix it factored."""
    from editor.covariance import ridged_cholesky

    torch.manual_seed(0)
    k = torch.randn(2000, 12) @ torch.randn(12, 256)
    k[:, :4] += 200.0
    c = (k.T @ k).double() / 2000
    a = c.clone()
    a.diagonal().add_(1e-6 * float(c.diagonal().mean()))
    assert int(torch.linalg.cholesky_ex(a)[1]) > 0           # what the fixed ridge did
    factor = ridged_cholesky(c.clone())
    assert (factor @ factor.T - c).norm() <= 1e-3 * c.norm()  # a small ridge, not a different matrix
