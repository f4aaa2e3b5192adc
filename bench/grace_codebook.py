"""GRACE codebook cost over a long life: milliseconds per added edit and per removed edit as the
codebook grows to 10,000 entries, for this codebook and for the replay-the-log codebook it
replaced (measured in the same process, up to the size the replay can reach in reasonable time).

    python bench/grace_codebook.py                      # 10,000 entries, d=1024 (the default model's GRACE layer)
    python bench/grace_codebook.py --entries 2000 --dim 4096 --json

Keys are random unit-scale vectors (one key per edit, the radius GRACE's default 1.0), so most
edits add an entry; every 10th edit re-uses an earlier prompt's key with another answer (a fact
edited again), and some land near others (splits). Prints a table; ``--json`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def edits(n: int, dim: int, seed: int = 0):
    import torch

    from editor.grace.codebook import GraceEdit

    g = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    keys = torch.randn(n, dim, generator=g) / dim ** 0.5 * 8
    out = []
    for i in range(n):
        k = keys[i]
        if i >= 10 and i % 10 == 0:
            k = out[rng.randrange(i)].keys[0]                          # the same prompt again
        elif i >= 10 and i % 7 == 0:
            k = out[rng.randrange(i)].keys[0] + 0.05 * torch.randn(dim, generator=g)  # a near one
        out.append(GraceEdit(f"e{i}", k[None].clone(), torch.randn(256, generator=g), f" answer{i % 50}", 1.0))
    return out


class ReplayCodebook:
    """The previous design: values re-stacked on every add, removal replays the whole log."""

    def __init__(self):
        from editor.grace.codebook import Codebook

        self.log = []
        self.book = Codebook()

    def add(self, e):
        import torch

        self.log.append(e)
        self.book.add(e)
        torch.stack([x.value for x in self.log])   # what each add of the old codebook did

    def remove(self, edit_id):
        from editor.grace.codebook import Codebook

        self.log = [e for e in self.log if e.edit_id != edit_id]
        self.book = Codebook()
        for e in self.log:
            self.book.add(e)


def measure(book, items, marks, removals: int):
    rows = []
    t_add = []
    for i, e in enumerate(items, 1):
        t0 = time.perf_counter()
        book.add(e)
        t_add.append(time.perf_counter() - t0)
        if i in marks:
            window = t_add[-min(100, len(t_add)):]
            rm = []
            for j in range(removals):
                # take an edit out and put it back under a new id (the codebook keeps its size)
                victim = items[(i * 7 + j * 13) % i]
                live = victim.edit_id + f"@{i}.{j}"
                book.add(victim.__class__(live, victim.keys, victim.value, victim.target, victim.epsilon))
                t0 = time.perf_counter()
                book.remove(live)
                rm.append(time.perf_counter() - t0)
            rows.append({"entries": len(book.book if hasattr(book, "book") else book), "edits": i,
                         "ms_per_add": round(1000 * sum(window) / len(window), 3),
                         "ms_per_remove": round(1000 * sum(rm) / len(rm), 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--replay-up-to", type=int, default=1000, help="largest size to run the old codebook at")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from editor.grace.codebook import Codebook

    torch.set_num_threads(2)
    items = edits(args.entries, args.dim)
    marks = sorted({m for m in (100, 1000, 2000, 5000, 10_000, 20_000) if m <= args.entries} | {args.entries})
    ours = measure(Codebook(), items, marks, removals=5)
    small = [m for m in marks if m <= args.replay_up_to]
    replay = measure(ReplayCodebook(), items[: small[-1]], small, removals=2) if small else []
    result = {"dim": args.dim, "codebook": ours, "replay_codebook": replay}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"GRACE codebook, keys of dimension {args.dim} (ms per operation)")
    for col in ("edits", "entries", "add (ms)", "remove (ms)", "old add (ms)", "old remove (ms)"):
        table.add_column(col, justify="right")
    old = {r["edits"]: r for r in replay}
    for r in ours:
        o = old.get(r["edits"], {})
        table.add_row(str(r["edits"]), str(r["entries"]), f"{r['ms_per_add']:.2f}", f"{r['ms_per_remove']:.2f}",
                      f"{o['ms_per_add']:.2f}" if o else "–", f"{o['ms_per_remove']:.2f}" if o else "–")
    Console().print(table)


if __name__ == "__main__":
    main()
