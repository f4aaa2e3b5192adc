"""Does the model keep up with the KG? Agreement through a long run of edits (prints numbers).

    python bench/consistency.py [--workspace WS] [--edits 1000] [--batch-size 8] [--every 100]
                                [--modes baseline,oneedit] [--consolidate-below 0.95] [--out DIR]

Counterfactual replacements drawn from the KG (seeded; a functional fact's object changed to
another object of that relation) go through the facade's batch path (``import_file``, one CSV
chunk of ``--every`` lines at a time, MEMIT batches of ``--batch-size``). After each chunk the
model is audited against the KG (:mod:`oneedit.audit`): agreement on edited facts, on unedited
facts, and held out. Two modes run on private copies of the same workspace:

* ``baseline`` — today's behaviour before the consistency work: plain sequential MEMIT, no KG
  neighbours in the solve, no repair, no consolidation;
* ``oneedit`` — the shipped settings: live edits' keys in the solve, KG neighbours held in place,
  drifted facts repaired, and consolidation whenever audited agreement on all facts falls below
  ``--consolidate-below``.

Prints one row per audit per mode (side by side), seconds per edit and per consolidation, and
draws ``consistency.png`` (agreement against edits) into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import tempfile
import time
from pathlib import Path

from common import workspace

MODES = ("baseline", "oneedit")


def draw(root: Path, n: int, seed: int, retract: float = 0.0) -> list[list[str]]:
    """``n`` CSV rows (labels), no two on the same subject: counterfactual replacements, and a
    ``retract`` share of retractions (``subject,relation,object,remove`` of the KG's value)."""
    import random

    from oneedit.evaluation import make_cases
    from oneedit.knowledge import Labeller, slot_values
    from oneedit.workspace import Workspace

    rng = random.Random(seed)
    with Workspace.open(root) as ws:
        cases = make_cases(ws, n, seed=seed)
        label = Labeller(ws.kg)
        rows = []
        for c in cases:
            f = c.fact
            if rng.random() < retract:
                old = slot_values(ws.kg, f.subject_id, f.relation)[0]
                rows.append([f.subject, f.relation, label(old.object), "remove"])
            else:
                rows.append([f.subject, f.relation, f.object])
    return rows


def run_mode(mode: str, root: Path, rows: list[list[str]], *, batch_size: int, every: int,
             consolidate_below: float, tmp: Path, rollback: float = 0.0, seed: int = 0) -> list[dict]:
    from editor import hparams as hp_mod
    from oneedit.audit import audit
    from oneedit.consolidation import consolidate
    from oneedit.system import OneEdit
    from oneedit.workspace import Workspace

    import random

    ws = Workspace.open(root)
    c = ws.config.consistency
    if mode == "baseline":
        c.keep_neighbours, c.repair, c.retract = 0, 0, False
    rng = random.Random(seed)
    retracted: dict[int, tuple] = {}  # ledger id -> the retracted triple (ids)
    rolled_back = 0
    oe = OneEdit(ws)

    def model():
        em = oe.model
        if mode == "baseline" and em.hp.memit.preserve_edits:
            em.hp = hp_mod.Hparams(em.hp.name, em.hp.memit.replace(preserve_edits=False), em.hp.grace, em.hp.notes)
        return em

    out = []
    first = audit(ws, model()).to_dict()
    out.append(_row(mode, 0, first, 0.0, None))
    print(json.dumps(out[-1]), flush=True)
    edit_seconds = 0.0
    done = 0
    for start in range(0, len(rows), every):
        chunk = rows[start: start + every]
        f = tmp / f"{mode}-{start}.csv"
        with f.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerows(chunk)
        model()
        first = (oe.ledger.list(limit=1)[0].id if oe.ledger.count() else 0) + 1
        t0 = time.perf_counter()
        summary = oe.import_file(f, batch_size=batch_size)
        applied = [e for e in oe.ledger.list(status="applied", limit=None, ascending=True) if e.id >= first]
        for e in applied:
            plan = e.record.plan
            for op, req in plan.requested if plan else ():
                if op == "retract":
                    gone = [t for t in plan.diff.removed if (t.subject, t.relation) == (req.subject, req.relation)]
                    if gone:
                        retracted[e.id] = gone[0].as_tuple()
        for e in rng.sample(applied, round(rollback * len(applied))):  # some are taken back later
            oe.rollback(e.id)
            retracted.pop(e.id, None)
            rolled_back += 1
        edit_seconds += time.perf_counter() - t0
        done += summary["applied"]
        rep = audit(ws, model()).to_dict()
        cons = None
        if mode == "oneedit" and consolidate_below and rep["all"]["agreement"] < consolidate_below:
            t0 = time.perf_counter()
            consolidate(ws, model())
            cons = round(time.perf_counter() - t0, 1)
            oe._em = None  # reopen on the consolidated weights
            out.append(_row(mode, done, rep, edit_seconds / max(done, 1), None, stage="before consolidation",
                            repaired=summary.get("repaired", 0), drifted=summary.get("drifted", 0)))
            print(json.dumps(out[-1]), flush=True)
            rep = audit(ws, model()).to_dict()
        out.append(_row(mode, done, rep, edit_seconds / max(done, 1), cons,
                        repaired=summary.get("repaired", 0), drifted=summary.get("drifted", 0),
                        rolled_back=rolled_back, **_retraction(oe, retracted)))
        print(json.dumps(out[-1]), flush=True)
    oe.close()
    return out


def _retraction(oe, retracted: dict) -> dict:
    """Of the facts retracted (and not rolled back), the share the model no longer asserts."""
    from oneedit.core import Triple

    olds = [Triple(*t) for t in retracted.values() if t and not oe.kg.store.contains(Triple(*t))]
    if not olds:
        return {"retracted": 0, "old_value_gone": None}
    still = oe.sync.repairs.probe(oe.model, olds)
    return {"retracted": len(olds), "old_value_gone": round(1 - sum(still) / len(olds), 4)}


def _row(mode, edits, rep, per_edit, cons, **extra) -> dict:
    return {"mode": mode, "edits": edits, "edited": rep["edited"]["agreement"], "unedited": rep["unedited"]["agreement"],
            "heldout": rep["all"]["heldout_agreement"], "edited_facts": rep["edited"]["facts"],
            "seconds_per_edit": round(per_edit, 3), "consolidation_seconds": cons,
            "retracted_agreement": (rep.get("retracted") or {}).get("agreement"),
            "audit_seconds": rep["seconds"], **extra}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6), sharey=True)
    for ax, key in zip(axes, ("edited", "unedited", "heldout"), strict=True):
        for mode, style in (("baseline", "s--"), ("oneedit", "o-")):
            pts = [(r["edits"], r[key]) for r in rows if r["mode"] == mode and r[key] is not None]
            if pts:
                ax.plot(*zip(*pts), style, label=mode, markersize=4)
        ax.set_title(f"agreement: {key}")
        ax.set_xlabel("edits")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", help="a workspace with its knowledge model (copied; default: a fresh one)")
    ap.add_argument("--edits", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--every", type=int, default=100, help="edits between audits")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--consolidate-below", type=float, default=0.95)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--retract", type=float, default=0.15, help="share of the rows that are retractions")
    ap.add_argument("--rollback", type=float, default=0.05, help="share of each chunk's edits rolled back after it")
    ap.add_argument("--out", default="bench/out/consistency")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        src = workspace(args.workspace, tmp / "src")
        edits = draw(src, args.edits, args.seed, args.retract)
        for mode in args.modes.split(","):
            root = tmp / mode
            shutil.copytree(src, root)
            rows += run_mode(mode, root, edits, batch_size=args.batch_size, every=args.every,
                             consolidate_below=args.consolidate_below, tmp=tmp, rollback=args.rollback,
                             seed=args.seed)
    (out / "consistency.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    plot(rows, out / "consistency.png")
    print(f"\n{'edits':>6} | " + " | ".join(f"{m:^40}" for m in args.modes.split(",")))
    print(f"{'':>6} | " + " | ".join(f"{'edited':>8} {'unedited':>8} {'held out':>8} {'s/edit':>6} {'cons s':>6}"
                                       for _ in args.modes.split(",")))
    marks = sorted({r["edits"] for r in rows})
    for n in marks:
        cells = []
        for m in args.modes.split(","):
            r = next((x for x in reversed(rows) if x["mode"] == m and x["edits"] == n), None)
            if r is None:
                cells.append(" " * 40)
                continue

            def f(x):
                return "   –" if x is None else f"{x:.3f}"
            cells.append(f"{f(r['edited']):>8} {f(r['unedited']):>8} {f(r['heldout']):>8} "
                         f"{r['seconds_per_edit']:>6.2f} {r['consolidation_seconds'] or 0:>6.0f}")
        print(f"{n:>6} | " + " | ".join(cells))
    print(f"\nplot: {out / 'consistency.png'}")


if __name__ == "__main__":
    main()
