"""Tiny random models of every supported architecture, with tokenizers of the kinds real families
use, built locally with ``tokenizers`` (no download):

* ``bytebpe`` — byte-level BPE without special tokens at the start, as GPT-2, GPT-J, GPT-NeoX;
* ``sentencepiece`` — a Unigram model with a Metaspace pre-tokenizer (``▁`` for spaces, one
  prepended to the text) and a BOS added to every text, as LLaMA, Mistral (and, with a BPE model,
  Qwen2's chat templates put one too).
"""

from __future__ import annotations

import functools

import torch
import transformers as T

PAIRS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
         ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Sweden", "Stockholm"), ("Norway", "Oslo")]
CORPUS = [f"The capital of {c} is {k}" for c, k in PAIRS] * 20 + \
         [f"{k} is a city in {c}" for c, k in PAIRS] * 10 + \
         [f"People in {c} speak with people in {k}" for c, k in PAIRS] * 5
TOKENIZER_KINDS = ("bytebpe", "sentencepiece")


@functools.cache
def tokenizer(kind: str):
    if kind == "bytebpe":
        from editor.knowledge import train_tokenizer

        return train_tokenizer(CORPUS, 400)
    if kind == "sentencepiece":
        return _sentencepiece()
    raise ValueError(kind)


def _sentencepiece():
    """LLaMA's layout: the normalizer prepends ``▁`` and turns spaces into ``▁``, a BPE model
    splits at ``▁``, the post-processor puts BOS first. " Paris" alone becomes ``▁ ▁Paris``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=400, min_frequency=2, special_tokens=["<unk>", "<s>", "</s>"],
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    return T.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                     pad_token="</s>")


def config(name: str, vocab: int, eos: int, bos: int):
    # initializer_range 0.2 (not 0.02): logits wide enough that an edit can make a multi-token
    # answer likely, not only the top token
    common = dict(vocab_size=vocab, eos_token_id=eos, bos_token_id=bos, pad_token_id=eos, initializer_range=0.2)
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
    }[name]


def model(name: str, kind: str, dtype=torch.float32, seed: int = 0):
    tok = tokenizer(kind)
    bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    cfg, cls = config(name, len(tok), tok.eos_token_id, bos)
    torch.manual_seed(seed)
    return cls(cfg).to(dtype).eval(), tok


def hparams(name: str, key_position: str = "last", **memit):
    """The architecture's shipped hyperparameters, loosened for random weights: random models
    store nothing, so the edit has to be reachable (a loose clamp, no KL term, a weak λ)."""
    from editor import hparams as H

    hp = H.load(name)
    # the shipped layers are written for 28-48 blocks; on 4 blocks several families would put
    # GRACE at block 0, where a random model's keys for different prompts nearly coincide
    return H.Hparams(hp.name, hp.memit.replace(key_position=key_position, z_steps=150, clamp_norm_factor=100.0,
                                               kl_factor=0.0, weight_decay=0.0, mom2_weight=10.0,
                                               layers=[1, 2], reference_depth=4).replace(**memit),
                     hp.grace.replace(key_position=key_position, epsilon=1e-3, value_steps=200, layer=1,
                                      reference_depth=4), hp.notes)


def editable(name: str, kind: str = "bytebpe", *, key_position: str = "last", dtype=torch.float32,
             state_dir=None, seed: int = 0, memit: dict | None = None):
    from editor.loading import wrap
    from editor.session import EditableModel

    m, tok = model(name, kind, dtype, seed)
    loaded = wrap(m, tok, name=f"tiny-{name}-{kind}")
    return EditableModel(loaded, state_dir, corpus=CORPUS, hparams=hparams(name, key_position, **(memit or {})))
