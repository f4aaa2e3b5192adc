"""MEMIT throughput: target vectors optimised for the whole batch vs one fact at a time.

Runs the same MEMIT code twice per batch size on the default knowledge model — ``z_batch=0``
(all facts in one optimisation, OneEdit's way) and ``z_batch=1`` (the published per-fact loop) —
on the same counterfactual edits, in one process, and prints edits/s for both, their ratio, and
the reliability each reached (so the speed-up is not bought with quality).

    python bench/edit_throughput.py                 # 16, 64, 256 edits on the default model (CPU)
    python bench/edit_throughput.py --sizes 64 --device cuda --xl   # also a GPT-2-XL-sized config

Key statistics (the covariance) are computed once before timing and reported separately: they are
cached on disk and shared by every later edit. Results go to ``bench/out/edit_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def workspace(path: Path | None):
    from oneedit.models import has_default, train_default
    from oneedit.workspace import Workspace

    ws, _ = Workspace.init(path or ROOT / "bench" / "out" / "ws")
    if not has_default(ws):
        print("training the default knowledge model (once; cached)…", flush=True)
        train_default(ws)
    return ws


def reliability(em, reqs) -> float:
    from editor.probe import greedy

    prompts = [p for r in reqs for p in r.prompts]
    exact, _ = greedy(em.model, em.codec, prompts, targets=[r.target for r in reqs for _ in r.prompts])
    return sum(exact) / len(exact)


def run_size(em, reqs, z_batch: int) -> dict:
    import torch

    from editor import hparams as H

    base = em.hp
    em.hp = H.Hparams(base.name, base.memit.replace(z_batch=z_batch), base.grace, base.notes)
    try:
        if em.loaded.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        delta = em.compute_memit(reqs)
        if em.loaded.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        em.apply_memit(f"bench-{z_batch}-{len(reqs)}", reqs, delta)
        rel = reliability(em, reqs)
        em.undo(f"bench-{z_batch}-{len(reqs)}", recheck=False)
    finally:
        em.hp = base
    return {"seconds": round(seconds, 3), "z_seconds": delta.stats["z_seconds"],
            "edits_per_s": round(len(reqs) / seconds, 3), "reliability": round(rel, 4),
            "z_passes": delta.stats["z_passes"]}


def bench_default(args) -> list[dict]:
    from oneedit.evaluation import make_cases
    from oneedit.models import open_model

    ws = workspace(args.workspace)
    em = open_model(ws, device=args.device)
    em.persist = False
    t0 = time.perf_counter()
    em.stats.moments(em.model, em.codec, em.loaded.fingerprint, em.hp.memit.resolve_layers(4),
                     em.corpus(), samples=em.hp.memit.cov_samples)
    print(f"key statistics: {time.perf_counter() - t0:.1f} s (once, then cached)", flush=True)
    rows = []
    for n in args.sizes:
        reqs = [c.request for c in make_cases(ws, n, seed=n)]
        batched = run_size(em, reqs, 0)
        single = run_size(em, reqs, 1) if not args.skip_single else None
        row = {"model": "oneedit-knowledge", "device": args.device, "edits": n, "batched": batched,
               "one_at_a_time": single,
               "speedup": round(batched["edits_per_s"] / single["edits_per_s"], 2) if single else None}
        rows.append(row)
        print(f"{n:>5} edits  batched {batched['edits_per_s']:8.2f} edits/s (rel {batched['reliability']:.3f})"
              + (f"  one-at-a-time {single['edits_per_s']:8.2f} edits/s (rel {single['reliability']:.3f})"
                 f"  ratio {row['speedup']:.1f}x" if single else ""), flush=True)
    ws.close()
    return rows


def bench_xl(args) -> list[dict]:
    """A GPT-2-XL-sized model (48 layers, d=1600) with random weights: throughput only."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from editor import hparams as H
    from editor.loading import wrap
    from editor.session import EditableModel
    from oneedit.evaluation import make_cases
    from oneedit.models import base_dir, kg_corpus

    ws = workspace(args.workspace)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir(ws))
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_layer=48, n_embd=1600, n_head=25, n_positions=128,
                     eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    model = GPT2LMHeadModel(cfg).to(device=args.device, dtype=dtype).eval()
    loaded = wrap(model, tok, name="gpt2-xl-sized (random)")
    hp = H.load("gpt2")
    em = EditableModel(loaded, None, corpus=kg_corpus(ws)[:2000],
                       hparams=H.Hparams("gpt2", hp.memit.replace(cov_samples=2000), hp.grace))
    t0 = time.perf_counter()
    em.stats.moments(em.model, em.codec, loaded.fingerprint, hp.memit.resolve_layers(48), em.corpus(), samples=2000)
    print(f"xl key statistics (2,000 texts): {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    for n in args.sizes:
        reqs = [c.request for c in make_cases(ws, n, seed=n)]
        batched = run_size(em, reqs, 0)
        single = run_size(em, reqs[: min(n, 16)], 1) if not args.skip_single else None
        row = {"model": "gpt2-xl-sized", "device": args.device, "dtype": args.dtype, "edits": n,
               "batched": batched, "one_at_a_time_16": single,
               "speedup": round(batched["edits_per_s"] / single["edits_per_s"], 2) if single else None}
        rows.append(row)
        print(f"xl {n:>5} edits  batched {batched['edits_per_s']:8.2f} edits/s"
              + (f"  one-at-a-time {single['edits_per_s']:8.2f} edits/s" if single else ""), flush=True)
    ws.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--workspace", type=Path, default=None)
    ap.add_argument("--xl", action="store_true", help="also (or, with --no-default, only) a GPT-2-XL-sized config")
    ap.add_argument("--no-default", action="store_true")
    ap.add_argument("--skip-single", action="store_true", help="only the batched run")
    args = ap.parse_args()
    import torch

    out = {"torch_threads": torch.get_num_threads(), "runs": []}
    if not args.no_default:
        out["runs"] += bench_default(args)
    if args.xl:
        out["runs"] += bench_xl(args)
    dest = ROOT / "bench" / "out"
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "edit_throughput.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {dest / 'edit_throughput.json'}")


if __name__ == "__main__":
    main()
