"""How many corpus texts MEMIT's key statistics need: edits solved with statistics from N texts,
against the same edits solved with statistics from all of them.

    python bench/stats_samples.py [--workspace WS] [--samples 250,1000,4000,16000] [--edits 16]
                                  [--seed 3] [--json]

On the workspace's knowledge model (default: a fresh workspace over the shipped KG and its shipped
model). The corpus is every training and held-out verbalisation of every fact the model learns,
shuffled (seeded): the statistics' own corpus for this model, widened. For each N, a seeded sample
of N texts gives ``C_N``; one batch of ``--edits`` counterfactual edits (drawn as ``oneedit eval``
draws them) is solved with ``C_N`` and with ``C_all`` (the same targets z: they do not depend on C;
no λ retries, so each is one solve). Printed per N: tokens read per key dimension, the relative
difference ‖ΔW_N − ΔW_all‖/‖ΔW_all‖ (largest over the edited layers), and, with ΔW_N applied, the
share of the edits' prompts answered (train / held-out templates) and of the locality probes that
were right before the edit and still are.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from common import workspace


def corpus(ws) -> list[str]:
    from oneedit.knowledge import kg_facts, verbalizer

    verb = verbalizer(ws.kg.schema)
    texts = sorted({p.sentence for f in kg_facts(ws.kg) for split in ("train", "heldout")
                    for p in verb.prompts(f, split)})
    random.Random(0).shuffle(texts)
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workspace", help="a workspace with a knowledge model (copied; default: a fresh one)")
    ap.add_argument("--samples", default="250,1000,4000,16000")
    ap.add_argument("--edits", type=int, default=16)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from editor import arch
    from editor.covariance import CovarianceCache, compute_moments, sample_texts
    from editor.memit.main import apply, compute
    from editor.probe import teacher_forced
    from oneedit.evaluation import make_cases
    from oneedit.models import open_model
    from oneedit.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        root = workspace(args.workspace, Path(tmp) / "ws")
        with Workspace.open(root) as ws:
            em = open_model(ws)
            texts = corpus(ws)
            cases = make_cases(ws, args.edits, seed=args.seed)
        hp = em.hp.memit.replace(lambda_retries=0)
        layers = hp.resolve_layers(arch.num_layers(em.model))
        requests = [c.request for c in cases]
        width = em.weights.param(layers[0]).shape[0]  # GPT-2 Conv1D: (d_in, d_out)

        def right(prompts) -> list[bool]:
            exact: list[bool] = []
            teacher_forced(em.model, em.codec, prompts, all_correct=exact)
            return exact

        train = [p for c in cases for p in c.request.prompts]
        held = [p for c in cases for p in c.generality]
        local = [p for c in cases for _, p in c.locality]
        local_before = right(local)

        def solve(moms):
            return compute(em.model, em.codec, requests, hp, weights=em.weights, stats=CovarianceCache(tmp),
                           fingerprint=em.loaded.fingerprint, moments=lambda _: moms)

        def run(n: int) -> tuple[dict, object]:
            chosen = sample_texts(texts, n)
            started = time.perf_counter()
            moms = compute_moments(em.model, em.codec, layers, chosen)
            seconds = time.perf_counter() - started
            tokens = sum(len(em.codec.ids(t)) for t in chosen)
            delta = solve(moms)
            apply(em.weights, delta)
            kept = [a and b for a, b in zip(local_before, right(local), strict=True)]
            row = {"texts": len(chosen), "tokens": tokens, "tokens_per_dim": round(tokens / width, 1),
                   "statistics_seconds": round(seconds, 2),
                   "reliability": round(sum(right(train)) / len(train), 3),
                   "generality": round(sum(right(held)) / len(held), 3),
                   "locality": round(sum(kept) / max(sum(local_before), 1), 3)}
            apply(em.weights, delta, sign=-1.0)
            return row, delta

        ref_row, ref = run(len(texts))
        rows = []
        for n in [int(x) for x in args.samples.split(",")]:
            if n >= len(texts):
                continue
            row, delta = run(n)
            row["delta_difference"] = round(max(
                float((delta.layers[k].dense() - ref.layers[k].dense()).norm() / ref.layers[k].dense().norm())
                for k in layers), 4)
            rows.append(row)
        ref_row["delta_difference"] = 0.0
        rows.append(ref_row)
    out = {"model": em.loaded.name, "key_width": width, "layers": layers, "edits": len(cases),
           "corpus_texts": len(texts), "rows": rows}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{out['edits']} edits, layers {layers}, key width {width}, corpus {len(texts):,} texts")
    print("| texts | tokens | tokens / d | ‖ΔW−ΔW_all‖/‖ΔW_all‖ | reliability | generality | locality | statistics s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['texts']:,} | {r['tokens']:,} | {r['tokens_per_dim']} | {r['delta_difference']:.4f} | "
              f"{r['reliability']:.3f} | {r['generality']:.3f} | {r['locality']:.3f} | {r['statistics_seconds']} |")


if __name__ == "__main__":
    main()
