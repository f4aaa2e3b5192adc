"""How well consolidation's continued training re-learns a changed KG (prints numbers).

    python bench/consolidation.py --workspace WS [--changed 200] [--seed 2] [--config '{"lr": 5e-4}']

Draws ``--changed`` counterfactual replacements from the KG (as ``oneedit eval`` does), runs
:func:`editor.knowledge.refresh` from the workspace's original knowledge model on the KG with them
applied, and measures exact match on the changed facts and on every unchanged fact (training and
held-out templates), with the seconds it took. ``--config`` overrides fields of
:class:`editor.knowledge.RefreshConfig`. The workspace is only read.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", required=True, help="a workspace with its knowledge model")
    ap.add_argument("--changed", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--config", default="{}", help="RefreshConfig overrides, as JSON")
    args = ap.parse_args()

    from editor.knowledge import RefreshConfig, read_card, refresh
    from editor.loading import load
    from oneedit.evaluation import make_cases
    from oneedit.knowledge import kg_facts, verbalizer
    from oneedit.models import _share, base_dir, measure_quality_loaded
    from oneedit.workspace import Workspace

    cfg = json.loads(args.config)
    with Workspace.open(args.workspace) as ws:
        verb = verbalizer(ws.kg.schema)
        facts = kg_facts(ws.kg)
        cases = make_cases(ws, args.changed, seed=args.seed)
        base = base_dir(ws)
    new = {(c.fact.subject, c.fact.relation): c.fact for c in cases}
    now = [new.get((f.subject, f.relation), f) for f in facts]
    changed = [f for f in now if (f.subject, f.relation) in new]
    share = _share(read_card(base))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "refreshed"
        started = time.perf_counter()
        summary = refresh(base, now, changed, verb, out, config=RefreshConfig(**cfg), share=share,
                          progress=lambda row: print({k: round(v, 4) if isinstance(v, float) else v
                                                      for k, v in row.items()}, flush=True))
        seconds = time.perf_counter() - started
        loaded = load(out)
        codec = loaded.codec()
        qc = measure_quality_loaded(loaded.model, codec, changed, verb, share=0.0)
        unchanged = [f for f in now if (f.subject, f.relation) not in new]
        qu = measure_quality_loaded(loaded.model, codec, unchanged, verb, share=share)
    print(json.dumps({"changed": len(changed), "config": cfg, "seconds": round(seconds, 1), "epochs": summary["epochs"],
                      "changed_train": qc["train"]["exact_match"], "changed_heldout": qc["heldout"]["exact_match"],
                      "unchanged_train": qu["train"]["exact_match"], "unchanged_heldout": qu["heldout"]["exact_match"]},
                     indent=1))


if __name__ == "__main__":
    main()
