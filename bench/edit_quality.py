"""One edit at a time, as ``oneedit edit`` makes them: is it written, does it generalise, what moves?

    python bench/edit_quality.py [--workspace WS] [--edits 40] [--seed 11] [--retract 0.2]
                                 [--variant '{"lambda_retries": 0}' ...] [--json]

Draws counterfactual replacements (and a ``--retract`` share of retractions) from the KG, seeded
(``bench/consistency.py``'s draw), and applies each through the facade (Controller, KG, MEMIT with
the KG neighbours held in place, repairs) and rolls it back before the next, like the tour's edits.
Per edit it reads, teacher-forced (every answer token ranked first):

* **train**: every training template of every fact the edit wrote into the model;
* **held out**: every held-out template of those facts (never part of the edit);
* **neighbours**: up to 32 KG facts that share a subject or a relation with them, and
* **random**: a fixed seeded sample of 300 KG facts — the share of those right before the edit
  that are still right after it (repairs included).

Each ``--variant`` is a JSON object of MEMIT hyperparameter overrides (``{}``: the shipped ones);
all variants run in one process on private copies of the same workspace, in the order given.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import workspace
from consistency import draw


def run_variant(root: Path, rows: list[list[str]], overrides: dict, *, seed: int) -> dict:
    from editor import hparams as hp_mod
    from editor.probe import teacher_forced
    from oneedit.core import EditIntent, Mention, Triple
    from oneedit.knowledge import Labeller, kg_triples, verbalizer
    from oneedit.neighbours import neighbour_facts
    from oneedit.system import OneEdit
    from oneedit.workspace import Workspace

    ws = Workspace.open(root)
    oe = OneEdit(ws)
    em = oe.model
    em.hp = hp_mod.Hparams(em.hp.name, em.hp.memit.replace(**overrides), em.hp.grace, em.hp.notes)
    kg = ws.kg
    verb = verbalizer(kg.schema)
    label = Labeller(kg)
    sample = random.Random(seed).sample(kg_triples(kg), 300)

    def right(triples, split="train", every=False) -> list[bool]:
        prompts = []
        for t in triples:
            ps = verb.prompts(label.fact(t), split)
            prompts += ps if every else ps[:1]
        exact: list[bool] = []
        if prompts:
            teacher_forced(em.model, em.codec, prompts, all_correct=exact)
        return exact

    def mention(text):
        try:
            ent = kg.resolve_entity(text)
        except Exception:  # a new name
            return Mention(text)
        return Mention(text, entity=ent, confidence=1.0)

    before_random = right(sample)
    out = {"train": [], "heldout": [], "neighbours": [], "random": [], "seconds": [], "solves": [], "lambda": []}
    for row in rows:
        s, rel, o = row[:3]
        op = "retract" if len(row) > 3 else "replace"
        intent = EditIntent(op, mention(s), rel, mention(o))
        written = []
        near = neighbour_facts(kg, [Triple(kg.resolve_entity(s).id, rel, "x")], limit=32)
        near_before = right(near)
        t0 = time.perf_counter()
        got = oe.submit(f"{op} {s} {rel} {o}", intents=[intent], probe=False)
        seconds = time.perf_counter() - t0
        if got.status != "applied" or not got.model or not got.model.get("facts"):
            if got.edit and got.status == "applied":
                oe.rollback(got.edit)
            continue
        written = [Triple(*f) for f in got.model["facts"]]
        out["train"] += right(written, "train", every=True)
        out["heldout"] += right(written, "heldout", every=True)
        out["neighbours"] += [a for b, a in zip(near_before, right(near), strict=True) if b]
        out["random"] += [a for b, a in zip(before_random, right(sample), strict=True) if b]
        out["seconds"].append(seconds)
        for e in em.manifest:
            if e["id"] == got.model.get("id"):
                out["solves"].append(e["stats"].get("solves", 1))
                out["lambda"].append(e["stats"].get("mom2_weight", em.hp.memit.mom2_weight))
        oe.rollback(got.edit)
    oe.close()

    def share(xs):
        return round(sum(xs) / len(xs), 4) if xs else None
    return {"variant": overrides, "edits": len(out["seconds"]), "train": share(out["train"]),
            "heldout": share(out["heldout"]), "neighbours": share(out["neighbours"]),
            "random": share(out["random"]), "seconds_per_edit": round(statistics.mean(out["seconds"]), 2),
            "mean_solves": round(statistics.mean(out["solves"]), 2) if out["solves"] else None,
            "min_lambda": min(out["lambda"]) if out["lambda"] else None}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", help="a workspace with its knowledge model (copied; default: a fresh one)")
    ap.add_argument("--edits", type=int, default=40)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--retract", type=float, default=0.2)
    ap.add_argument("--variant", action="append", default=[], help="MEMIT overrides as JSON (repeatable)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    variants = [json.loads(v) for v in args.variant] or [{}]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        base = workspace(args.workspace, Path(tmp) / "base")
        rows = draw(base, args.edits, args.seed, args.retract)
        for i, v in enumerate(variants):
            root = Path(tmp) / f"v{i}"
            shutil.copytree(base, root)
            results.append(run_variant(root, rows, v, seed=args.seed))
            if not args.json:
                r = results[-1]
                print(f"{json.dumps(v):45s} edits {r['edits']:3d}  train {r['train']}  held out {r['heldout']}  "
                      f"neighbours {r['neighbours']}  random {r['random']}  {r['seconds_per_edit']} s/edit  "
                      f"solves {r['mean_solves']}  min λ {r['min_lambda']}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
