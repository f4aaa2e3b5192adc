"""The default knowledge model: a small GPT-2 trained from scratch on verbalised KG facts.

No pretrained weights can be downloaded where OneEdit is set up, so the embedded default is a
model that learns the KG's facts from the schema's ``train`` templates. The recipe is measured on
2 CPU cores (see ``kg_data/README.md`` and the editor docs): 4 layers, d=256, answer-only loss,
AdamW with warm-up and cosine decay, early stop once the training prompts are recalled.

The output is a standard Hugging Face directory (``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load it) plus ``oneedit.json``, the model card: which KG
revision and content hash it learned, how it was trained, and its measured quality.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from editor.verbalize import Fact, Prompt, Verbalizer

CARD = "oneedit.json"
EOS = "<|endoftext|>"
#: Threads used to train when ``TrainConfig.threads`` is not given. Fixed (not "all cores"): float
#: reductions split differently across thread counts, so a fixed count gives the same model on any
#: machine with at least this many cores.
DEFAULT_THREADS = 2


def default_threads() -> int:
    return max(1, min(DEFAULT_THREADS, os.cpu_count() or 1))


@dataclass(frozen=True)
class TrainConfig:
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_positions: int = 64
    vocab_size: int = 8192
    batch_size: int = 64
    #: peak learning rate (warm-up, then cosine). 1e-3 reaches the gate two epochs sooner than the
    #: 2e-3 of the first recipe on the shipped KG (recall 0.54 against 0.42 at epoch 4; 7e-4 and
    #: 1.3e-3 pass at epoch 8, 3e-3 learns slower still): docs/editor.md, "Training time"
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_epochs: float = 1.0
    max_epochs: int = 12
    stop_at: float = 0.995   # stop once this share of training prompts is recalled (teacher-forced, all tokens)
    #: stop at the quality gate: the caller's check (``train(until=...)``, the gate the model must
    #: pass) runs after each epoch whose running recall reached ``check_from``; training stops at
    #: the first epoch that passes it
    gate_stop: bool = True
    check_from: float = 0.9
    phrasing_share: float = 0.15  # facts that also teach the held-out phrasings (see phrasing_fact)
    #: from the second epoch on, a prompt whose answer loss was below this at its last pass is
    #: "learned" and trains only with probability ``easy_share`` (0: every prompt, every epoch).
    #: A learned prompt's backward pass teaches almost nothing; the hard ones get the compute.
    skip_easy: float = 0.05
    easy_share: float = 0.25
    #: each batch runs as this many length-sorted parts, gradients summed (less padding; 1: one pass)
    micro_batches: int = 2
    #: matmuls in bfloat16 (autocast; weights, optimiser and loss stay float32): "auto" uses it where
    #: the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX: about 1.7x the float32 rate on
    #: this project's 2-core machines), "bf16" always, "fp32" never. The resolved value is part of
    #: the recipe (and the content hash): a CPU without it trains another model.
    precision: str = "auto"
    #: AdamW as one fused kernel over every parameter (torch's CPU ``fused=True``: a step in about
    #: 6 ms instead of 15 here); rounds differently from the per-parameter loop, so it is part of the recipe
    fused_adam: bool = True
    seed: int = 0
    threads: int | None = None

    @classmethod
    def from_key(cls, key: dict) -> TrainConfig:
        """The recipe a card's ``train_config`` (a :meth:`key`) records: a field it lacks is a
        feature that was off (or did not exist yet) when the model was trained."""
        return cls(**{**OFF, **key})

    def resolved_precision(self) -> str:
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {self.precision!r}")
        if self.precision != "auto":
            return self.precision
        return "bf16" if native_bf16() else "fp32"

    def key(self) -> dict:
        """The fields that decide the model (the content hash's); a feature that is off leaves the
        key as it was before the feature existed, so models trained without it keep their hash."""
        d = asdict(self)
        d.pop("threads")
        d["precision"] = self.resolved_precision()
        if d["precision"] == "fp32":
            d.pop("precision")
        if not self.fused_adam:
            d.pop("fused_adam")
        if self.micro_batches == 1:
            d.pop("micro_batches")
        if not self.skip_easy:
            d.pop("skip_easy")
            d.pop("easy_share")
        if not self.gate_stop:
            d.pop("gate_stop")
            d.pop("check_from")
        return d


#: the recipe's later features, off: what a ``train_config`` without them means (see TrainConfig.key)
OFF = {"skip_easy": 0.0, "micro_batches": 1, "gate_stop": False, "precision": "fp32", "fused_adam": False}


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (else autocast would emulate it, slower)."""
    import torch

    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


@dataclass
class TrainResult:
    path: Path
    card: dict
    seconds: float
    epochs: int
    history: list[dict] = field(default_factory=list)


def content_hash(facts: Sequence[Fact], verbalizer: Verbalizer, config: TrainConfig) -> str:
    """What the model learns, hashed: facts (labels), templates and the training recipe."""
    h = hashlib.sha256()
    h.update(json.dumps(config.key(), sort_keys=True).encode())
    h.update(json.dumps(verbalizer.templates, sort_keys=True).encode())
    for f in sorted(facts, key=lambda f: (f.relation, f.subject, f.object)):
        h.update(f"{f.subject}\x1f{f.relation}\x1f{f.object}\x1e".encode())
    return h.hexdigest()[:16]


def train_tokenizer(texts: Sequence[str], vocab_size: int):
    """Byte-level BPE (any text encodes; no unknown tokens), wrapped for ``from_pretrained``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS,
                                   pad_token=EOS, unk_token=None, model_max_length=1024)


def phrasing_fact(fact: Fact, share: float) -> bool:
    """Whether ``fact`` is one of the ``share`` of facts that also teach the held-out phrasings.

    A model trained from scratch has seen no language but its training sentences: a phrasing it
    never met ("Which city is the capital of X?") means nothing to it. So the held-out templates
    are taught on a fixed share of the facts (chosen by a stable hash), and held-out quality is
    measured on the *other* facts only — (fact, phrasing) pairs the model never saw, which is the
    generalisation MEMIT's paraphrase test needs.
    """
    if share <= 0:
        return False
    digest = hashlib.sha1(f"{fact.subject}\x1f{fact.relation}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < share


def training_prompts(facts: Sequence[Fact], verbalizer: Verbalizer, share: float = 0.0) -> list[Prompt]:
    out = []
    for f in facts:
        out += verbalizer.prompts(f, "train")
        if phrasing_fact(f, share):
            out += verbalizer.prompts(f, "heldout")
    return out


def heldout_prompts(facts: Sequence[Fact], verbalizer: Verbalizer, share: float = 0.0) -> list[Prompt]:
    """Held-out phrasings of the facts that were never trained with them."""
    return [p for f in facts if not phrasing_fact(f, share) for p in verbalizer.prompts(f, "heldout")]


def train(facts: Sequence[Fact], verbalizer: Verbalizer, out: str | Path, *,
          config: TrainConfig = TrainConfig(), kg_info: dict | None = None,
          progress: Callable[[dict], None] | None = None,
          until: Callable[[object, object], dict | None] | None = None) -> TrainResult:
    """Train tokenizer and model on ``facts``, save to ``out``; returns the result with its card.

    Deterministic for the same facts, templates, config and thread count: training runs on
    ``config.threads`` threads (default :func:`default_threads`) with torch's deterministic
    algorithms on; both settings are restored afterwards.
    """
    if not facts:
        raise ValueError("no facts to train on")
    with _deterministic(config.threads or default_threads()):
        return _train(facts, verbalizer, Path(out), config=config, kg_info=kg_info, progress=progress,
                      until=until)


@contextmanager
def _deterministic(threads: int) -> Iterator[None]:
    """Run the body on ``threads`` torch threads with deterministic algorithms; restore both after."""
    import torch

    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det, warn_only=old_warn)
        torch.set_num_threads(old_threads)


def _train(facts: Sequence[Fact], verbalizer: Verbalizer, out: Path, *, config: TrainConfig,
           kg_info: dict | None, progress: Callable[[dict], None] | None,
           until: Callable[[object, object], dict | None] | None = None) -> TrainResult:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from transformers.utils import logging as hf_logging

    from editor.encoding import TextCodec

    hf_logging.set_verbosity_error()
    started = time.perf_counter()
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    precision = config.resolved_precision()
    prompts = training_prompts(facts, verbalizer, config.phrasing_share)
    labels = sorted({f.subject for f in facts} | {f.object for f in facts})
    tokenizer = train_tokenizer([p.sentence for p in prompts] + labels, config.vocab_size)
    codec = TextCodec(tokenizer, end_of_fact=True)
    gpt = GPT2Config(vocab_size=len(tokenizer), n_positions=config.n_positions, n_embd=config.n_embd,
                     n_layer=config.n_layer, n_head=config.n_head, n_inner=4 * config.n_embd,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    model = GPT2LMHeadModel(gpt)
    model.train()

    steps_per_epoch = math.ceil(len(prompts) / config.batch_size)
    total = steps_per_epoch * config.max_epochs
    warmup = max(1, int(steps_per_epoch * config.warmup_epochs))
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "ln" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98),
                            **({"fused": True} if config.fused_adam else {}))

    def lr_at(epoch: int, step: float) -> float:
        # warm-up then cosine decay over the planned epochs, counted in full-epoch steps: an epoch
        # that trains fewer prompts (skip_easy) moves through its share of the schedule in fewer
        # steps; a full epoch gives exactly the rates of a LambdaLR stepped once per batch
        s = (epoch - 1) * steps_per_epoch + step
        return config.lr * (min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0))))

    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict] = []
    epoch = 0
    state = PromptState(len(prompts))
    for epoch in range(1, config.max_epochs + 1):
        chosen = None
        if config.skip_easy > 0 and epoch > 1:
            easy = state.loss < config.skip_easy
            draw = torch.rand(len(prompts), generator=gen) < config.easy_share
            chosen = (~easy | draw).nonzero()[:, 0]
        loss, _ = _epoch(model, codec, prompts, opt, None, gen, config.batch_size, subset=chosen,
                         state=state, lr_at=lambda done, e=epoch: lr_at(e, done), steps=steps_per_epoch,
                         micro=config.micro_batches, bf16=precision == "bf16")
        trained = len(prompts) if chosen is None else len(chosen)
        recall = state.recall()
        row = {"epoch": epoch, "loss": loss, "recall": recall, "trained": trained,
               "seconds": time.perf_counter() - started}
        if until is not None and config.gate_stop and recall >= config.check_from:
            model.eval()
            verdict = until(model, codec)
            model.train()
            if verdict is not None:
                row["check"] = verdict
        history.append(row)
        if progress:
            progress({**row, "max_epochs": config.max_epochs})
        if row["recall"] >= config.stop_at or row.get("check", {}).get("passed"):
            break

    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    seconds = time.perf_counter() - started
    card = {
        "name": "oneedit-knowledge",
        "architecture": "gpt2",
        "parameters": sum(p.numel() for p in model.parameters()),
        "kg": kg_info or {},
        "content_hash": content_hash(facts, verbalizer, config),
        "facts": len(facts),
        "relations": sorted({f.relation for f in facts}),
        "training_prompts": len(prompts),
        "train_config": config.key(),
        "epochs": epoch,
        "train_seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "end_of_fact": True,
        "history": history,
    }
    write_card(out, card)
    return TrainResult(out, card, seconds, epoch, history)


class PromptState:
    """Per training prompt: its answer loss and whether every answer token was ranked first, at the
    prompt's latest pass (what ``skip_easy`` and the running recall read)."""

    def __init__(self, n: int):
        import torch

        self.loss = torch.full((n,), float("inf"))
        self.ok = torch.zeros(n, dtype=torch.bool)

    def recall(self) -> float:
        return float(self.ok.float().mean()) if len(self.ok) else 0.0


def _epoch(model, codec, prompts: Sequence[Prompt], opt, sched, gen, batch_size: int,
           anchor: tuple | None = None, *, subset=None, state: PromptState | None = None,
           lr_at: Callable[[float], float] | None = None, steps: int = 0, micro: int = 1,
           bf16: bool = False) -> tuple[float, float]:
    """One pass over ``prompts`` (or the indices in ``subset``) in a seeded order; returns (mean
    loss, share of the prompts trained whose every target token was ranked first during the pass);
    ``state``, if given, is updated for each prompt trained.

    The learning rate follows ``sched`` (stepped after each batch) or ``lr_at(steps into the pass)``,
    counted as if the pass had ``steps`` batches (a shorter pass moves faster through its share).
    """
    import torch

    correct = seen = 0
    loss_sum = 0.0
    if subset is None:
        order = torch.randperm(len(prompts), generator=gen).tolist()
    else:
        order = subset[torch.randperm(len(subset), generator=gen)].tolist()
    n_batches = math.ceil(len(order) / batch_size)
    for b, start in enumerate(range(0, len(order), batch_size)):
        rows = order[start: start + batch_size]
        # Mixed batches learn faster than length-sorted ones (measured: sorted batches hold one
        # template each and recall trailed by half at epoch 7; sorting within pools of 16 batches,
        # 1.5x fewer tokens, left recall at 0.35 against 0.58 at epoch 5), so each batch stays a
        # random draw; ``micro`` > 1 runs it as that many length-sorted parts whose gradients add
        # up to the batch's (the same update, with less padding).
        if micro > 1:
            rows = sorted(rows, key=lambda i: len(codec.pair(prompts[i]).prompt) + len(codec.pair(prompts[i]).target))
            size = math.ceil(len(rows) / micro)
            parts = [rows[k: k + size] for k in range(0, len(rows), size)]
        else:
            parts = [rows]
        encs = [codec.encode([prompts[i] for i in part]) for part in parts]
        n_targets = sum(int((e.labels != -100).sum()) for e in encs)
        if lr_at is not None:
            rate = lr_at(b if n_batches == steps else b * steps / n_batches)
            for group in opt.param_groups:
                group["lr"] = rate
        opt.zero_grad(set_to_none=True)
        batch_loss = 0.0
        for part, enc in zip(parts, encs, strict=True):
            # the LM head only where a target token is predicted (a quarter of the compute otherwise)
            where = enc.labels != -100
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                hidden = model.transformer(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
                logits = model.lm_head(hidden[where])
            logits = logits.float()
            gold = enc.labels[where]
            per_token = torch.nn.functional.cross_entropy(logits, gold, reduction="none")
            loss = per_token.mean() if len(parts) == 1 else per_token.sum() / max(n_targets, 1)
            loss.backward()
            batch_loss += float(loss.detach())
            with torch.no_grad():
                at = where.nonzero()[:, 0]
                missed = torch.bincount(at[logits.argmax(-1) != gold], minlength=len(part))
                correct += int((missed == 0).sum())
                if state is not None:
                    idx = torch.tensor(part)
                    counts = torch.bincount(at, minlength=len(part)).clamp(min=1)
                    state.loss[idx] = torch.zeros(len(part)).index_add_(0, at, per_token.detach()) / counts
                    state.ok[idx] = missed == 0
        if anchor is not None:
            weight, params, base = anchor
            with torch.no_grad():
                for p, p0 in zip(params, base):
                    p.grad.add_(p - p0, alpha=2 * weight)
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        if sched is not None:
            sched.step()
        seen += len(rows)
        loss_sum += batch_loss * len(rows)
    return loss_sum / max(seen, 1), correct / max(seen, 1)


@dataclass(frozen=True)
class RefreshConfig:
    """Continued training of a knowledge model on a changed KG (what consolidation runs)."""

    # measured on the default model, 200 counterfactual facts changed (docs/editor.md): lr 1e-3 with
    # 512 rehearsal prompts kept 0.79 of the unchanged facts, 5e-4 with 3x rehearsal 0.92, and
    # 5e-4 with 10x rehearsal 0.986 (the untouched model: 0.9855)
    lr: float = 5e-4
    warmup_steps: int = 10
    max_steps: int = 1000       # the budget (and the cosine schedule's length), in optimizer steps
    rehearsal: float = 10.0     # unchanged-fact prompts per changed-fact prompt, redrawn each epoch
    min_rehearsal: int = 4096   # at least this many unchanged-fact prompts per epoch
    changed_share: float = 0.2  # changed-fact prompts are repeated to be at least this share of an epoch
    stop_at: float = 0.99       # stop once this share of the changed facts' prompts is recalled
    batch_size: int = 64
    #: which weights train: "all", or "mlp" (the feed-forward blocks only; embeddings, attention
    #: and norms stay as the base model has them)
    train: str = "all"
    #: pull towards the base weights: adds anchor * |w - w_base|^2 to the loss (0: off)
    anchor: float = 0.0
    #: rehearse every prompt of the unchanged facts that share a subject or an object with a
    #: changed fact in each epoch (they are the ones a change disturbs), within the rehearsal budget
    neighbours: bool = False
    seed: int = 0
    threads: int | None = None


def refresh(base: str | Path, facts: Sequence[Fact], changed: Sequence[Fact], verbalizer: Verbalizer,
            out: str | Path, *, config: RefreshConfig = RefreshConfig(), share: float = 0.0,
            progress: Callable[[dict], None] | None = None) -> dict:
    """Continue training the knowledge model in ``base`` so it knows ``facts`` (the KG now), where
    ``changed`` are the facts the base model did not learn (new or changed since); save to ``out``.

    Each epoch trains on every prompt of the changed facts plus a fresh seeded draw of unchanged
    facts' prompts (rehearsal, so what the model knew is not forgotten), until the changed facts
    are recalled. Deterministic for the same inputs and thread count, and a function of the base
    model and the facts only — not of the edits that led there — so a model refreshed without one
    edit's facts is the model that edit never touched. Returns a summary (epochs, recall, seconds).
    """
    with _deterministic(config.threads or default_threads()):
        return _refresh(Path(base), facts, changed, verbalizer, Path(out), config=config, share=share,
                        progress=progress)


def _refresh(base: Path, facts, changed, verbalizer, out: Path, *, config: RefreshConfig, share: float,
             progress) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from editor.encoding import TextCodec

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(base)
    codec = TextCodec(tokenizer, end_of_fact=True)
    model.train()
    if config.train not in ("all", "mlp"):
        raise ValueError(f"RefreshConfig.train must be 'all' or 'mlp', not {config.train!r}")
    if config.train == "mlp":
        for name, p in model.named_parameters():
            p.requires_grad_(".mlp." in name)
    params = [p for p in model.parameters() if p.requires_grad]
    anchors = [p.detach().clone() for p in params] if config.anchor > 0 else []
    changed_keys = {(f.subject, f.relation) for f in changed}
    unchanged = [f for f in facts if (f.subject, f.relation) not in changed_keys]
    new_prompts = training_prompts(changed, verbalizer, share)
    n_old = min(len(training_prompts(unchanged, verbalizer, share)),
                max(config.min_rehearsal, int(config.rehearsal * len(new_prompts))))
    near: list[Prompt] = []
    if config.neighbours:
        # the other facts of the changed subjects; at most half the rehearsal (an entity with many
        # facts must not crowd out the uniform draw that keeps the rest of the KG)
        touched = {f.subject for f in changed}
        near = training_prompts([f for f in unchanged if f.subject in touched], verbalizer, share)
        near = random.Random(config.seed).sample(near, min(len(near), n_old // 2))
        unchanged = [f for f in unchanged if f.subject not in touched]
    old_prompts = training_prompts(unchanged, verbalizer, share)
    n_draw = min(len(old_prompts), n_old - len(near))
    # a handful of changed facts would be a sliver of each epoch next to the rehearsal: repeat them
    want = config.changed_share / max(1e-9, 1 - config.changed_share) * n_old
    repeat = max(1, math.ceil(want / max(len(new_prompts), 1)))
    per_epoch = repeat * len(new_prompts) + len(near) + n_draw
    # the budget is in steps, not epochs: a handful of changed facts makes short epochs, and needs
    # as many updates to be learned as a large change does
    steps_per_epoch = math.ceil(per_epoch / config.batch_size)
    max_epochs = max(1, config.max_steps // steps_per_epoch)
    total = steps_per_epoch * max_epochs
    opt = torch.optim.AdamW(params, lr=config.lr, betas=(0.9, 0.98), weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / config.warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(s / total, 1.0))))
    gen = torch.Generator().manual_seed(config.seed)
    rng = random.Random(config.seed)
    history = []
    recall = 0.0
    for epoch in range(1, max_epochs + 1):
        if not new_prompts:
            break
        batch = new_prompts * repeat + near + rng.sample(old_prompts, n_draw)
        loss, _ = _epoch(model, codec, batch, opt, sched, gen, config.batch_size,
                         anchor=(config.anchor, params, anchors) if anchors else None)
        recall = _recall(model, codec, new_prompts)
        row = {"epoch": epoch, "loss": loss, "recall": recall, "seconds": time.perf_counter() - started}
        history.append(row)
        if progress:
            progress({**row, "max_epochs": max_epochs})
        model.train()
        if recall >= config.stop_at:
            break
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"changed_facts": len(changed), "changed_prompts": len(new_prompts), "repeat": repeat,
            "rehearsal_prompts": n_old, "neighbour_prompts": len(near),
            "epochs": len(history), "recall": recall, "seconds": round(time.perf_counter() - started, 1),
            "history": history, "config": asdict(config)}


def _recall(model, codec, prompts) -> float:
    from editor.probe import teacher_forced

    model.eval()
    exact: list[bool] = []
    teacher_forced(model, codec, prompts, all_correct=exact)
    return sum(exact) / max(len(exact), 1)


def read_card(path: str | Path) -> dict | None:
    f = Path(path) / CARD
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None


def write_card(path: str | Path, card: dict) -> None:
    (Path(path) / CARD).write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
