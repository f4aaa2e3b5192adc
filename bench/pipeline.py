"""End-to-end pipeline targets on the default knowledge model (prints numbers; not a test).

    python bench/pipeline.py [--workspace WS] [--lines 1000] [--batch-size 64] [--json]

Runs on a private copy of ``WS`` (default: a fresh workspace over the shipped KG, its model from
the cache or trained once). Measures:

1. **One NL edit end to end** (parse → check → KG → GRACE, and the same with MEMIT): seconds per
   edit over several edits, without the before/after probes the CLI prints.
2. **The Lyon scenario**: after "The capital of France is Lyon" (MEMIT), the model's answers on every
   training and held-out template, the inverse "Lyon is the capital of" → France, how many of 300
   unrelated facts keep their answer; then the rollback: the KG equal to before and the model's
   answers on all those prompts equal to before.
3. **Batch import**: N counterfactual NL lines drawn from the KG, imported with MEMIT batching;
   lines per second and the applied/rejected counts.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from common import workspace


def single_edits(oe, method: str, texts: list[str]) -> dict:
    times, ok = [], 0
    for text in texts:
        t0 = time.perf_counter()
        out = oe.submit(text, method=method, probe=False)
        times.append(time.perf_counter() - t0)
        ok += out.status == "applied"
    return {"method": method, "edits": len(texts), "applied": ok, "median_s": round(statistics.median(times), 3),
            "max_s": round(max(times), 3), "seconds": [round(t, 3) for t in times]}


def rollback_all(oe) -> None:
    """Undo every applied edit, newest first (so the next measurement starts from the shipped KG)."""
    for e in oe.ledger.list(status="applied", limit=None):
        if oe.ledger.get(e.id).status == "applied":
            oe.rollback(e.id, cascade=True)


def lyon(oe) -> dict:
    from oneedit.knowledge import Labeller, kg_triples, verbalizer
    from editor.verbalize import Fact

    verb = verbalizer(oe.kg.schema)
    label = Labeller(oe.kg)
    rng = random.Random(0)
    unrelated = [t for t in kg_triples(oe.kg) if "france" not in (t.subject, t.object) and t.subject != "paris"]
    probes = [verb.prompt(label.fact(t), "train", rng.randrange(4)) for t in rng.sample(unrelated, 300)]
    before_unrelated = oe.sync.answers([("train", p) for p in probes])
    kg_before = set(oe.kg.store.triples())
    out = oe.submit("The capital of France is Lyon", method="memit", probe=False)
    assert out.status == "applied", out.to_dict()
    capital = [("train", p) for p in verb.prompts(Fact("France", "capital", "Lyon", "france", "lyon"), "train")]
    capital += [("heldout", p) for p in verb.prompts(Fact("France", "capital", "Lyon", "france", "lyon"), "heldout")]
    inverse = [("train", p) for p in verb.prompts(Fact("Lyon", "capital_of", "France", "lyon", "france"), "train")]
    inverse += [("heldout", p) for p in verb.prompts(Fact("Lyon", "capital_of", "France", "lyon", "france"), "heldout")]
    said = oe.sync.answers(capital + inverse)
    rows = [{"split": s, "prompt": p.text, "expected": p.target.strip(), "said": a,
             "ok": a.casefold().startswith(p.target.strip().casefold())}
            for (s, p), a in zip(capital + inverse, said, strict=True)]
    after_unrelated = oe.sync.answers([("train", p) for p in probes])
    kept = sum(a == b for a, b in zip(before_unrelated, after_unrelated, strict=True))
    t0 = time.perf_counter()
    oe.rollback(out.edit)
    rollback_s = time.perf_counter() - t0
    restored = oe.sync.answers([("train", p) for p in probes])
    back = oe.sync.answers([("train", capital[0][1])])[0]
    return {
        "edit_seconds": round(out.seconds, 2),
        "capital_train": f"{sum(r['ok'] for r in rows[:len(capital)] if r['split'] == 'train')}/"
                         f"{sum(1 for r in rows[:len(capital)] if r['split'] == 'train')}",
        "capital_heldout": f"{sum(r['ok'] for r in rows[:len(capital)] if r['split'] == 'heldout')}/"
                           f"{sum(1 for r in rows[:len(capital)] if r['split'] == 'heldout')}",
        "inverse_train": f"{sum(r['ok'] for r in rows[len(capital):] if r['split'] == 'train')}/"
                         f"{sum(1 for r in rows[len(capital):] if r['split'] == 'train')}",
        "inverse_heldout": f"{sum(r['ok'] for r in rows[len(capital):] if r['split'] == 'heldout')}/"
                           f"{sum(1 for r in rows[len(capital):] if r['split'] == 'heldout')}",
        "unrelated_unchanged": f"{kept}/{len(probes)}",
        "rollback_seconds": round(rollback_s, 3),
        "rollback_kg_equal": set(oe.kg.store.triples()) == kg_before,
        "rollback_model_equal": f"{sum(a == b for a, b in zip(before_unrelated, restored, strict=True))}/{len(probes)}",
        "capital_after_rollback": back,
        "answers": rows,
    }


def import_lines(oe, n: int, seed: int = 0) -> list[str]:
    """``n`` counterfactual requests in plain language: a functional fact given another object the
    relation has elsewhere (rendered with the relation's first training template)."""
    from oneedit.knowledge import Labeller, kg_triples, verbalizer
    from editor.verbalize import Fact

    schema = oe.kg.schema
    verb = verbalizer(schema)
    label = Labeller(oe.kg)
    facts = [t for t in kg_triples(oe.kg) if not schema.relations[t.relation].composite
             and verb.prompt_templates(t.relation, "train")]
    rng = random.Random(seed)
    rng.shuffle(facts)
    by_rel: dict[str, list[str]] = {}
    for t in facts:
        by_rel.setdefault(t.relation, []).append(t.object)
    lines, seen = [], set()
    for t in facts:
        if len(lines) >= n:
            break
        if t.subject in seen:
            continue
        seen.add(t.subject)
        new = rng.choice(by_rel[t.relation])
        if new == t.object:
            continue
        p = verb.prompt(Fact(label(t.subject), t.relation, label(new), t.subject, new), "train", 0)
        lines.append(p.sentence if hasattr(p, "sentence") else p.text + p.target)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace")
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from oneedit.system import OneEdit

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = workspace(args.workspace, Path(tmp) / "ws")
        with OneEdit.open(root) as oe:
            t0 = time.perf_counter()
            oe.model  # load + re-apply edits
            results["open_seconds"] = round(time.perf_counter() - t0, 2)
            oe.submit("The capital of Italy is Milan", method="memit", probe=False)  # warm: key statistics
            texts = ["The capital of Spain is Barcelona", "The CEO of Apple is Satya Nadella",
                     "Albert Einstein was born in Paris", "The currency of Japan is the euro",
                     "The capital of Canada is Toronto"]
            results["single_grace"] = single_edits(oe, "grace", texts)
            rollback_all(oe)
            results["single_memit"] = single_edits(oe, "memit", texts)
            rollback_all(oe)
            results["lyon"] = lyon(oe)
            lines = import_lines(oe, args.lines)
            f = Path(tmp) / "requests.txt"
            f.write_text("\n".join(lines) + "\n", encoding="utf-8")
            t0 = time.perf_counter()
            summary = oe.import_file(f, batch_size=args.batch_size, method="memit")
            total = time.perf_counter() - t0
            results["import"] = {k: summary[k] for k in ("lines", "applied", "rejected", "needs_review", "failed",
                                                         "unchanged", "skipped", "model_batches")}
            results["import"] |= {"seconds": round(total, 1), "lines_per_second": round(len(lines) / total, 2)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    g, m, ly, im = results["single_grace"], results["single_memit"], results["lyon"], results["import"]
    print(f"model open: {results['open_seconds']} s")
    print(f"one NL edit end to end, GRACE: median {g['median_s']} s (max {g['max_s']} s), {g['applied']}/{g['edits']} applied")
    print(f"one NL edit end to end, MEMIT: median {m['median_s']} s (max {m['max_s']} s), {m['applied']}/{m['edits']} applied")
    print(f"Lyon: capital train {ly['capital_train']}, held out {ly['capital_heldout']}; inverse train "
          f"{ly['inverse_train']}, held out {ly['inverse_heldout']}; unrelated unchanged {ly['unrelated_unchanged']}")
    print(f"      rollback {ly['rollback_seconds']} s: KG equal {ly['rollback_kg_equal']}, model answers equal "
          f"{ly['rollback_model_equal']}, capital after rollback: {ly['capital_after_rollback']}")
    print(f"import: {im['lines']} lines in {im['seconds']} s ({im['lines_per_second']} lines/s): applied "
          f"{im['applied']}, rejected {im['rejected']}, review {im['needs_review']}, failed {im['failed']}, "
          f"unchanged {im['unchanged']}; {im['model_batches']} MEMIT batches")


if __name__ == "__main__":
    main()
