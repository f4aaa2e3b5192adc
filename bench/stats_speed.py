"""How long MEMIT's key statistics take per model size, on this machine.

    python bench/stats_speed.py [--sizes 124M,355M] [--texts 48] [--tokens 256] [--threads 2]
                                [--samples 20000] [--baseline] [--json]

For each size: a GPT-2 of that shape with random weights (built from its config, nothing
downloaded), the layers ``editor/hparams/gpt2.yaml`` edits scaled to its depth, and ``--texts``
texts of ``--tokens`` random token ids each (a Wikipedia article is longer than the 256 tokens the
statistics read of a text, so full-length texts are the case to plan for). Prints the tokens per
second of :func:`editor.covariance.compute_moments` and the minutes ``--samples`` texts take at that
rate. ``--baseline`` also times the pass it replaced (the whole model and LM head, every edited
layer's keys of a batch kept, float64 products) on the same texts.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from contextlib import ExitStack

import torch

SIZES = {"124M": (12, 768, 12), "355M": (24, 1024, 16), "774M": (36, 1280, 20), "1.5B": (48, 1600, 25)}


class IdCodec:
    """Texts that are token ids written out ("17 4051 933 ..."), as the statistics read them."""

    pad_id = 0

    def ids(self, text: str) -> list[int]:
        return [int(x) for x in text.split()]


def gpt2(size: str):
    import transformers as T

    n_layer, n_embd, n_head = SIZES[size]
    torch.manual_seed(0)
    cfg = T.GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, n_positions=1024)
    return T.GPT2LMHeadModel(cfg).eval()


def baseline_moments(model, codec, layers, texts, *, batch_size: int = 64) -> dict:
    """The pass before streaming: the whole model, each batch's keys kept per layer, float64 products."""
    from editor import arch
    from editor.hooks import capture_input

    spec = arch.arch_of(model)
    mods = {layer: model.get_submodule(spec.mlp_out_path(layer)) for layer in layers}
    sums, count = {}, 0
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = [codec.ids(texts[i])[:256] for i in order[start: start + batch_size]]
            width = max(len(r) for r in rows)
            ids = torch.zeros((len(rows), width), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = torch.tensor(r)
                mask[i, : len(r)] = 1
            stores = {layer: [] for layer in layers}
            with ExitStack() as stack:
                for layer in layers:
                    stack.enter_context(capture_input(mods[layer], stores[layer]))
                model(input_ids=ids, attention_mask=mask)
            keep = mask.bool()
            for layer in layers:
                k = stores[layer][0][keep].to(torch.float64)
                sums[layer] = k.T @ k + sums.get(layer, 0)
            count += int(keep.sum())
    return {layer: s / count for layer, s in sums.items()}


def run(size: str, *, texts: int, tokens: int, samples: int, baseline: bool) -> dict:
    from editor import hparams
    from editor.covariance import compute_moments

    model = gpt2(size)
    layers = hparams.load("gpt2").memit.resolve_layers(model.config.n_layer)
    rng = random.Random(0)
    corpus = [" ".join(str(rng.randrange(1, 50257)) for _ in range(tokens)) for _ in range(texts)]
    codec = IdCodec()
    compute_moments(model, codec, layers, corpus[:4], batch_size=4)  # warm-up
    started = time.perf_counter()
    got = compute_moments(model, codec, layers, corpus)
    seconds = time.perf_counter() - started
    n = texts * tokens
    out = {"size": size, "parameters": sum(p.numel() for p in model.parameters()), "layers": layers,
           "blocks": model.config.n_layer, "d_mlp": 4 * model.config.n_embd, "tokens": n,
           "seconds": round(seconds, 2), "tokens_per_second": round(n / seconds),
           "default_samples": samples, "default_minutes": round(samples * tokens / (n / seconds) / 60, 1)}
    # what the shipped default reads: cov_samples texts, cut at cov_tokens_per_dim tokens per key dimension
    memit = hparams.load("gpt2").memit
    budget = min(memit.cov_samples * tokens, memit.cov_tokens_per_dim * out["d_mlp"] or memit.cov_samples * tokens)
    out |= {"budget_tokens": budget, "budget_minutes": round(budget / (n / seconds) / 60, 1)}
    if baseline:
        started = time.perf_counter()
        old = baseline_moments(model, codec, layers, corpus)
        b = time.perf_counter() - started
        out |= {"baseline_seconds": round(b, 2), "baseline_tokens_per_second": round(n / b),
                "speedup": round(b / seconds, 2),
                "max_relative_difference": max(float((got[k] - old[k]).norm() / old[k].norm()) for k in layers)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="124M,355M", help="comma-separated: " + ", ".join(SIZES))
    ap.add_argument("--texts", type=int, default=48)
    ap.add_argument("--tokens", type=int, default=256, help="tokens per text (256: what a long text gives)")
    ap.add_argument("--samples", type=int, default=10_000, help="texts to extrapolate the minutes to")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--baseline", action="store_true", help="also time the previous, unstreamed pass")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [run(s.strip(), texts=args.texts, tokens=args.tokens, samples=args.samples, baseline=args.baseline)
            for s in args.sizes.split(",")]
    if args.json:
        print(json.dumps({"threads": torch.get_num_threads(), "rows": rows}, indent=1))
        return
    print(f"torch threads: {torch.get_num_threads()}")
    for r in rows:
        line = (f"{r['size']:>5}: {r['blocks']} blocks, layers {r['layers']}, d_mlp {r['d_mlp']}: "
                f"{r['tokens_per_second']:,} tokens/s -> {r['default_samples']:,} texts of {args.tokens} tokens "
                f"in {r['default_minutes']} min; the default budget, {r['budget_tokens']:,} tokens, in "
                f"{r['budget_minutes']} min")
        if "baseline_seconds" in r:
            line += (f"; before: {r['baseline_tokens_per_second']:,} tokens/s ({r['speedup']}x), "
                     f"max relative difference {r['max_relative_difference']:.1e}")
        print(line)


if __name__ == "__main__":
    main()
