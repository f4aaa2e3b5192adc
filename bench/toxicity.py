"""How much abuse the safety checks catch, and how many harmless texts they stop (prints numbers).

    python bench/toxicity.py [--json] [--show-set SET ...]

Runs :class:`controller.safety.SafetyChecker` with the shipped defaults (the classifier, and the
lexicon check of :mod:`controller.profanity`) — and, beside it, the classifier alone — on:

* ``tests/data/abuse_tuning.jsonl`` — abusive requests the lexicon check was tuned on;
* ``tests/data/abuse_heldout.jsonl`` — abusive requests written independently of the check and
  never tuned on (by kind: plain words, compounds, leetspeak, separated letters, stretched
  letters, look-alike letters, mixed tricks, slurs, insults);
* ``tests/data/abuse_heldout2.jsonl`` — a second held-out set, written before the lexicon's second
  round of rules by their author, from their own knowledge, and never tuned on;
* ``tests/data/clean_tricky.jsonl`` — harmless requests full of names and words that contain
  swear words (Scunthorpe, Penistone, cocktail, therapist); tuned on;
* ``tests/data/clean_tricky2.jsonl`` — more of them (Twatt, Dick Cheney, fucose, peacock), written
  with ``abuse_heldout2`` and never tuned on;
* every entity label of the shipped KG, checked as a new name (nothing masked);
* every verbalised training sentence of the KG's facts, with the fact's names masked as the
  controller masks the entities a request mentions, and ``tests/data/requests.jsonl``.

"Caught" means rejected or held for review: the edit is not applied as it stands.
``--show-set SET`` lists the misses and false positives of a set one may tune on
(``abuse_tuning``, ``clean_tricky``, ``requests``, ``kg_labels``, ``kg_sentences``); the held-out
sets are reported as numbers only, so that nobody tunes on them by reading their misses.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _jsonl(name: str) -> list[dict]:
    path = ROOT / "tests" / "data" / name
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


#: Sets never tuned on: reported as numbers, their misses never listed (not even with --json).
HELD_OUT = ("abuse_heldout", "abuse_heldout2", "clean_tricky2")


def measure() -> dict:
    from common import shipped_texts
    from controller.safety import SafetyChecker, ToxicityCheck

    entities, sentences, names = shipped_texts()
    labels = sorted({e.label for e in entities})
    every_name = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, names)) + r")(?!\w)", re.IGNORECASE)

    def mentioned(text: str) -> list[str]:  # the KG names a request mentions, as the interpreter links them
        return [m.group(0) for m in every_name.finditer(text)]

    sets = {
        "abuse_tuning": [(r["text"], r["kind"]) for r in _jsonl("abuse_tuning.jsonl")],
        "abuse_heldout": [(r["text"], r["kind"]) for r in _jsonl("abuse_heldout.jsonl")],
        "abuse_heldout2": [(r["text"], r["kind"]) for r in _jsonl("abuse_heldout2.jsonl")],
        "clean_tricky": [(r["text"], "clean") for r in _jsonl("clean_tricky.jsonl")],
        "clean_tricky2": [(r["text"], "clean") for r in _jsonl("clean_tricky2.jsonl")],
        "requests": [(r["text"], "clean") for r in _jsonl("requests.jsonl")],
        "kg_labels": [(label, "label") for label in labels],
        "kg_sentences": [(s, "sentence") for s, _ in sentences],
    }
    known = {"kg_labels": None, "kg_sentences": [k for _, k in sentences]}
    checkers = {"shipped": SafetyChecker(), "classifier_only": SafetyChecker(ToxicityCheck(), lexicon=None)}
    out: dict = {"counts": {k: len(v) for k, v in sets.items()}, "checkers": {}}
    for cname, checker in checkers.items():
        started = time.perf_counter()
        res = {}
        for sname, items in sets.items():
            flagged = []
            for i, (text, kind) in enumerate(items):
                if sname == "kg_labels":
                    findings = checker.check("", [text])  # a new entity name, nothing masked
                else:
                    kn = known[sname][i] if sname in known else mentioned(text)
                    findings = checker.check(text, known=kn)
                flagged.append(any(f.verdict in ("reject", "review") for f in findings))
            by_kind = collections.defaultdict(lambda: [0, 0])
            for (text, kind), f in zip(items, flagged):
                by_kind[kind][0] += f
                by_kind[kind][1] += 1
            res[sname] = {"flagged": sum(flagged), "of": len(items), "rate": round(sum(flagged) / len(items), 4),
                          "by_kind": {k: f"{a}/{b}" for k, (a, b) in sorted(by_kind.items())},
                          "misses" if sname.startswith("abuse") else "false_positives":
                              [t for (t, _), f in zip(items, flagged) if f != sname.startswith("abuse")]}
        for sname in HELD_OUT:  # numbers only: their texts are not to be read while tuning
            res[sname].pop("misses", None)
            res[sname].pop("false_positives", None)
        res["seconds"] = round(time.perf_counter() - started, 1)
        out["checkers"][cname] = res
    return out


#: The sets whose misses may be listed: those tuned on and the shipped KG's own texts.
SHOWABLE = ("abuse_tuning", "clean_tricky", "requests", "kg_labels", "kg_sentences")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--show-set", action="append", default=[], choices=SHOWABLE, metavar="SET",
                    help="list the misses and false positives of SET (repeatable; one of "
                         + ", ".join(SHOWABLE) + "; never a held-out set)")
    args = ap.parse_args(argv)
    res = measure()
    if args.json:
        print(json.dumps(res, indent=1, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    c = Console()
    t = Table(title="caught (rejected or held for review)")
    t.add_column("set")
    for name in res["checkers"]:
        t.add_column(name, justify="right")
    for sname in res["counts"]:
        t.add_row(sname, *(f"{r[sname]['flagged']}/{r[sname]['of']} ({r[sname]['rate']:.1%})"
                           for r in res["checkers"].values()))
    c.print(t)
    for held in ("abuse_heldout", "abuse_heldout2"):
        k = Table(title=f"{held} by kind")
        k.add_column("kind")
        for name in res["checkers"]:
            k.add_column(name, justify="right")
        for kind in res["checkers"]["shipped"][held]["by_kind"]:
            k.add_row(kind, *(r[held]["by_kind"][kind] for r in res["checkers"].values()))
        c.print(k)
    r = res["checkers"]["shipped"]
    for sname in args.show_set:
        for text in r[sname].get("misses", []) + r[sname].get("false_positives", []):
            c.print(f"  {sname}: {text}", markup=False, highlight=False)


if __name__ == "__main__":
    main()
