"""Running edit cases through an editable model and measuring the field's four numbers.

* reliability — the edit prompts now give the new object;
* generality — held-out rephrasings (never used to edit) give it too;
* locality — unrelated probes give what the model said before any edit;
* portability — facts that follow from the edit (inverse, composites) give their new values.

Each is reported as teacher-forced token accuracy and as exact-match greedy generation. Batch
mode applies all edits (in batches of ``batch_size``) and evaluates after the last; sequential mode
also evaluates each case right after its edit, and every case edited so far at checkpoints, which
is what the plot shows.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from editor.memit import Request
from editor.probe import continuations, greedy, teacher_forced
from editor.verbalize import Fact, Prompt

METRICS = ("reliability", "generality", "locality", "portability")


@dataclass
class Case:
    case_id: str
    fact: Fact
    old_object: str
    request: Request
    generality: list[Prompt]
    locality: list[tuple[str, Prompt]]
    portability: list[tuple[str, Prompt]]
    augment: list[Request] = field(default_factory=list)   # consequence facts written with the edit (--augment)
    locality_ref: list[str] = field(default_factory=list)  # pre-edit greedy outputs

    def to_dict(self) -> dict:
        return {"case": self.case_id, "subject": self.fact.subject, "relation": self.fact.relation,
                "old": self.old_object, "new": self.fact.object,
                "edit_prompts": [p.text for p in self.request.prompts],
                "generality": [p.text for p in self.generality],
                "locality": [{"kind": k, "prompt": p.text, "expected": ref.strip()}
                             for (k, p), ref in zip(self.locality, self.locality_ref or [""] * len(self.locality), strict=True)],
                "portability": [{"relation": r, "prompt": p.text, "expected": p.target.strip()}
                                for r, p in self.portability]}


def _probes(cases: Sequence[Case]) -> dict[str, tuple[list[Prompt], list[str], list[int]]]:
    """Per metric: prompts, targets, and the case index of each prompt."""
    out: dict[str, tuple[list, list, list]] = {m: ([], [], []) for m in METRICS}
    for i, c in enumerate(cases):
        for p in c.request.prompts:
            _push(out["reliability"], p, c.request.target, i)
        for p in c.generality:
            _push(out["generality"], p, c.fact.object and " " + c.fact.object, i)
        for (_, p), ref in zip(c.locality, c.locality_ref, strict=True):
            _push(out["locality"], p, ref, i)
        for _, p in c.portability:
            _push(out["portability"], p, p.target, i)
    return out


def _push(bucket, prompt, target, i):
    bucket[0].append(prompt)
    bucket[1].append(target)
    bucket[2].append(i)


def measure(model, codec, cases: Sequence[Case]) -> dict:
    """Mean token accuracy and exact-match rate per metric over ``cases``."""
    res = {}
    for metric, (prompts, targets, _) in _probes(cases).items():
        if not prompts:
            res[metric] = {"probes": 0, "token_accuracy": None, "exact_match": None}
            continue
        acc = teacher_forced(model, codec, prompts, targets=targets)
        exact, _ = greedy(model, codec, prompts, targets=targets)
        res[metric] = {"probes": len(prompts), "token_accuracy": round(sum(acc) / len(acc), 4),
                       "exact_match": round(sum(exact) / len(exact), 4)}
        if metric == "reliability" and codec.end_of_fact:
            res[metric]["ends"] = answer_ends(model, codec, prompts, targets)
    return res


def measure_each(model, codec, cases: Sequence[Case]) -> list[dict]:
    """:func:`measure` per case: ``[{metric: {"probes", "token_accuracy", "exact_match"}}]`` (one
    pass per metric over every case's probes)."""
    out = [{m: {"probes": 0, "token_accuracy": None, "exact_match": None} for m in METRICS} for _ in cases]
    for metric, (prompts, targets, owner) in _probes(cases).items():
        if not prompts:
            continue
        acc = teacher_forced(model, codec, prompts, targets=targets)
        exact, _ = greedy(model, codec, prompts, targets=targets)
        sums: dict[int, list] = {}
        for i, a, e in zip(owner, acc, exact, strict=True):
            s = sums.setdefault(i, [0, 0.0, 0])
            s[0] += 1
            s[1] += a
            s[2] += bool(e)
        for i, (k, a, e) in sums.items():
            out[i][metric] = {"probes": k, "token_accuracy": round(a / k, 4), "exact_match": round(e / k, 4)}
    return out


def answer_ends(model, codec, prompts: Sequence[Prompt], targets: Sequence[str]) -> float:
    """Share of prompts whose greedy continuation is exactly the target and then the end of the
    answer (for models that mark it): an edited answer must stop where an unedited one does."""
    longest = max(len(codec.pair(p, t).target) for p, t in zip(prompts, targets, strict=True))
    said = continuations(model, codec, prompts, max_new_tokens=longest + 2)
    return round(sum(s.strip() == t.strip() for s, t in zip(said, targets, strict=True)) / len(prompts), 4)


def set_locality_refs(model, codec, cases: Sequence[Case]) -> None:
    """What the unedited model says on every locality probe (the answers that must not move)."""
    prompts = [p for c in cases for _, p in c.locality]
    if not prompts:
        return
    refs = continuations(model, codec, prompts, max_new_tokens=8)
    k = 0
    for c in cases:
        c.locality_ref = refs[k: k + len(c.locality)]
        k += len(c.locality)


def run(editable, cases: Sequence[Case], *, method: str, batch_size: int | None = None,
        sequential: bool = False, checkpoints: int = 10, augment: bool = False,
        progress: Callable[[str, int, int], None] | None = None) -> dict:
    model, codec = editable.model, editable.codec
    set_locality_refs(model, codec, cases)
    before = measure(model, codec, cases)
    n = len(cases)
    bs = 1 if sequential and not batch_size else (batch_size or n)
    batches = [list(range(s, min(s + bs, n))) for s in range(0, n, bs)]
    marks = sorted({max(1, round(n * k / checkpoints)) for k in range(1, checkpoints + 1)}) if sequential else []
    curve: list[dict] = []
    right_after: list[dict] = []
    edit_seconds = 0.0
    done = 0
    unconverged: list[str] = []
    for b, idxs in enumerate(batches):
        reqs, main = [], {}
        for i in idxs:
            main[len(reqs)] = cases[i].case_id
            reqs += [cases[i].request, *(cases[i].augment if augment else [])]
        t0 = time.perf_counter()
        editable.edit(f"eval-{b + 1}", reqs, method)
        edit_seconds += time.perf_counter() - t0
        # GRACE names the requests whose value did not reach its stop loss (``<edit>#<request>``)
        for sub in editable.manifest[-1]["stats"].get("unconverged_ids", []):
            k = int(sub.rsplit("#", 1)[1])
            if k in main:
                unconverged.append(main[k])
        done += len(idxs)
        if sequential:
            right_after.append({"edits": done, **_flat(measure(model, codec, [cases[i] for i in idxs]))})
            if any(done >= m > done - len(idxs) for m in marks):
                curve.append({"edits": done, **_flat(measure(model, codec, cases[:done]))})
        if progress:
            progress("edits", done, n)
    after = measure(model, codec, cases)
    if not sequential:
        curve.append({"edits": n, **_flat(after)})
    result = {
        "method": method, "edits": n, "batch_size": bs, "sequential": sequential, "augment": augment,
        "requests": sum(1 + (len(c.augment) if augment else 0) for c in cases),
        "edit_seconds": round(edit_seconds, 3), "edits_per_second": round(n / edit_seconds, 3) if edit_seconds else None,
        "before": before, "after": after, "curve": curve,
        "unconverged_cases": unconverged,
    }
    if sequential:
        result["right_after_each_edit"] = _mean_rows(right_after)
        result["right_after"] = right_after
    return result


def _flat(m: dict) -> dict:
    out = {}
    for metric, v in m.items():
        out[f"{metric}_exact"] = v["exact_match"]
        out[f"{metric}_token"] = v["token_accuracy"]
    return out


def _mean_rows(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k != "edits"] if rows else []
    out = {}
    for k in keys:
        vals = [r[k] for r in rows if r[k] is not None]
        out[k] = round(sum(vals) / len(vals), 4) if vals else None
    return out


# -- reports -----------------------------------------------------------------------------------------
def write_report(result: dict, cases: Sequence[Case], out_dir: str | Path, *, title: str = "OneEdit evaluation") -> dict:
    """``result.json``, ``report.md`` and ``metrics.png`` in ``out_dir``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = dict(result)
    data["cases"] = [c.to_dict() for c in cases]
    (out / "result.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    png = out / "metrics.png"
    plot(result, png, title=title)
    (out / "report.md").write_text(markdown(result, title, png.name), encoding="utf-8")
    return {"json": str(out / "result.json"), "markdown": str(out / "report.md"), "plot": str(png)}


def markdown(result: dict, title: str, png: str | None = None) -> str:
    mode = "sequential" if result["sequential"] else "batch"
    lines = [f"# {title}", "",
             f"{result['method'].upper()}, {result['edits']} edits, {mode} (batch size {result['batch_size']}); "
             f"editing took {result['edit_seconds']:.2f} s ({result['edits_per_second'] or 0:.2f} edits/s).", "",
             "| metric | exact match (after) | token accuracy (after) | exact match (before) | probes |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for m in METRICS:
        a, b = result["after"][m], result["before"][m]
        lines.append(f"| {m} | {_pct(a['exact_match'])} | {_pct(a['token_accuracy'])} | {_pct(b['exact_match'])} | {a['probes']} |")
    if result.get("right_after_each_edit"):
        r = result["right_after_each_edit"]
        lines += ["", "Right after each edit (mean over edits): " + ", ".join(
            f"{m} {_pct(r.get(f'{m}_exact'))}" for m in METRICS)]
    if png:
        lines += ["", f"![metrics against the number of edits]({png})"]
    return "\n".join(lines) + "\n"


def _pct(x) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def plot(result: dict, path: str | Path, *, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = result["curve"]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), sharey=True)
    for ax, m in zip(axes, METRICS, strict=True):
        xs = [row["edits"] for row in curve]
        for suffix, style, name in (("exact", "o-", "exact match"), ("token", "s--", "token accuracy")):
            ys = [row[f"{m}_{suffix}"] for row in curve]
            if any(y is not None for y in ys):
                ax.plot(xs, [y if y is not None else float("nan") for y in ys], style, label=name, markersize=4)
        ax.set_title(m)
        ax.set_xlabel("edits")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title or f"{result['method'].upper()} — {result['edits']} edits")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
