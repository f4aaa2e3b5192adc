"""Training the knowledge model: seconds, tokens/s and epochs to the quality gate.

    python bench/train_speed.py                      # today's recipe (TrainConfig())
    python bench/train_speed.py --set skip_easy=0 gate_stop=0   # one part of it off
    python bench/train_speed.py --baseline --set ... # the old recipe first, then the new, one process
    python bench/train_speed.py --baseline-after     # the same, the new recipe first

With ``gate_stop`` (the default recipe) the gate (models.GATE: exact match on training and
held-out phrasings) is checked after each epoch whose running recall reached ``check_from`` and
training stops when it passes, which is what ``oneedit init`` does. Trains on the shipped KG's facts (the default model's data), on the threads
the recipe trains with (2); prints one row per epoch and a summary (``--json`` for the summary).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path


#: the recipe before skip_easy, micro_batches, the gate stop, bf16, the fused optimiser and the lower
#: learning rate (its models keep their content hash): what trained a user's KG when issue 18 was filed
BEFORE_FIELDS = dict(skip_easy=0.0, micro_batches=1, gate_stop=False, max_epochs=12, precision="fp32",
                     fused_adam=False, lr=2e-3, warmup_epochs=1.0)


def parse_sets(items: list[str]) -> dict:
    from editor.knowledge import TrainConfig

    types = {f.name: f.type for f in fields(TrainConfig)}
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in types:
            sys.exit(f"unknown TrainConfig field {key!r}; fields: {', '.join(types)}")
        kind = str(types[key])
        out[key] = (float(value) if "float" in kind else (value in ("1", "true", "True")) if "bool" in kind
                    else value if "str" in kind else int(value))
    return out


def run(facts, verb, config, *, label: str) -> dict:
    from transformers import AutoTokenizer

    from editor.knowledge import train, training_prompts
    from oneedit.models import GATE, gate_check, gate_passed, measure_quality

    def show(row):
        check = row.get("check")
        extra = f"  trained {row.get('trained')}" + (
            f"  gate: train {check['train']:.4f} heldout {check['heldout']:.4f}" if check else "")
        print(f"  [{label}] epoch {row['epoch']:>2}  loss {row['loss']:.3f}  recall {row['recall']:.4f}  "
              f"{row['seconds']:6.1f} s{extra}", flush=True)

    prompts = training_prompts(facts, verb, config.phrasing_share)
    until, checked = gate_check(facts, verb, config)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = train(facts, verb, Path(tmp) / "m", config=config, progress=show, until=until)
        seconds = time.perf_counter() - started
        quality = checked[-1] if checked and "check" in result.history[-1] else \
            measure_quality(Path(tmp) / "m", facts, verb)
        tok = AutoTokenizer.from_pretrained(Path(tmp) / "m")
    per_prompt = sum(len(tok(p.text + p.target)["input_ids"]) + 1 for p in prompts) / len(prompts)
    trained = sum(h.get("trained", len(prompts)) for h in result.history)
    return {"label": label, "config": config.key(), "epochs": result.epochs, "seconds": round(seconds, 1),
            "seconds_per_epoch": round(seconds / result.epochs, 1), "prompts": len(prompts),
            "epoch_equivalents": round(trained / len(prompts), 2),
            "tokens_per_second": round(trained * per_prompt / seconds),
            "train_exact_match": quality["train"]["exact_match"],
            "heldout_exact_match": quality["heldout"]["exact_match"], "gate": GATE,
            "passed": gate_passed(quality)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="TrainConfig overrides")
    ap.add_argument("--baseline", action="store_true",
                    help="first train the recipe before this work (12 epochs, no skipping, no gate stop)")
    ap.add_argument("--baseline-after", action="store_true",
                    help="the same comparison with the recipe first (the second run of a process is slower here)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from editor.knowledge import TrainConfig
    from oneedit.models import training_facts

    from oneedit.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp) / "ws", progress=None)
        with ws:
            facts, verb = training_facts(ws)
    rows = []
    config = replace(TrainConfig(), **parse_sets(args.set))
    if args.baseline_after:
        rows.append(run(facts, verb, config, label="recipe"))
    if args.baseline or args.baseline_after:
        rows.append(run(facts, verb, replace(TrainConfig(), **BEFORE_FIELDS), label="baseline"))
    if not args.baseline_after:
        rows.append(run(facts, verb, config, label="recipe"))
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['label']}: {r['epochs']} epochs, {r['seconds']} s ({r['seconds_per_epoch']} s/epoch), "
              f"{r['epoch_equivalents']} epochs of prompts, {r['tokens_per_second']} tokens/s, "
              f"train {r['train_exact_match']:.4f}, held out {r['heldout_exact_match']:.4f}, "
              f"gate {'passed' if r['passed'] else 'FAILED'}")


if __name__ == "__main__":
    main()
