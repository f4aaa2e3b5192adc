"""Accuracy of an interpreter on labelled requests (``tests/data/requests.jsonl``).

Each line holds a request ``text``, its ``category`` and either the ``expect``ed intents or the
``error`` it must raise. An intent is right when its operation and triple are exactly the
expected ones: entity ids for linked names, ``{"new": name, "type": T}`` for proposed entities,
``{"ambiguous": [ids]}`` for names that must come back as candidates (all listed ids among them,
nothing linked), ``null`` for a question's unknown; ``undo`` compares the edit id and count,
``explain`` what it is about. A request is right when all its intents are, in order, and no more.
An optional ``note`` must appear in the result's notes (what the schema cannot express).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from oneedit.core import EditIntent, Mention, OneEditError


@dataclass
class Outcome:
    row: dict
    ok: bool
    got: object
    reason: str = ""


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def accuracy(self) -> float:
        return sum(o.ok for o in self.outcomes) / len(self.outcomes) if self.outcomes else 0.0

    def by_category(self) -> dict[str, tuple[int, int]]:
        out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for o in self.outcomes:
            c = out[o.row["category"]]
            c[0] += o.ok
            c[1] += 1
        return {k: (v[0], v[1]) for k, v in sorted(out.items())}

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def table(self) -> str:
        lines = [f"{'category':<18} {'right':>5} / {'all':<4} accuracy"]
        for cat, (ok, n) in self.by_category().items():
            lines.append(f"{cat:<18} {ok:>5} / {n:<4} {ok / n:6.1%}")
        n = len(self.outcomes)
        lines.append(f"{'overall':<18} {sum(o.ok for o in self.outcomes):>5} / {n:<4} {self.accuracy:6.1%}"
                     f"   ({self.seconds / max(n, 1) * 1000:.1f} ms per request)")
        return "\n".join(lines)


def load_requests(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def _mention_ok(m: Mention | None, want) -> bool:
    if want is None:
        return m is None
    if m is None:
        return False
    if isinstance(want, str):
        return m.status == "linked" and m.id == want
    if "new" in want:
        return (m.status == "new" and m.text.casefold() == want["new"].casefold()
                and m.new_type == want["type"])
    if "ambiguous" in want:
        ids = {c.entity.id for c in m.candidates}
        return m.status == "ambiguous" and set(want["ambiguous"]) <= ids
    return False


def intent_matches(intent: EditIntent, want: dict) -> bool:
    if intent.op != want["op"]:
        return False
    if intent.op == "undo":
        return intent.edit == want.get("edit") and intent.count == want.get("count", 1)
    if intent.op == "explain" and (intent.about != want.get("about") or intent.edit != want.get("edit")):
        return False
    return (intent.relation == want.get("relation") and _mention_ok(intent.subject, want.get("subject"))
            and _mention_ok(intent.object, want.get("object")))


def check(interpreter, row: dict) -> Outcome:
    try:
        result = interpreter.parse(row["text"])
    except OneEditError as exc:
        if row.get("error") == type(exc).__name__:
            return Outcome(row, True, type(exc).__name__)
        return Outcome(row, False, f"{type(exc).__name__}: {exc.message}", "raised")
    got = [i.to_dict() for i in result.intents]
    if "error" in row:
        return Outcome(row, False, got, f"expected {row['error']}")
    want = row["expect"]
    if len(result.intents) != len(want):
        return Outcome(row, False, got, f"{len(result.intents)} intents, expected {len(want)}")
    for k, (i, w) in enumerate(zip(result.intents, want, strict=True)):
        if not intent_matches(i, w):
            return Outcome(row, False, got, f"intent {k + 1} differs")
    if row.get("note") and not any(row["note"] in n for n in result.notes):
        return Outcome(row, False, got, f"no note about {row['note']!r}")
    return Outcome(row, True, got)


def evaluate(interpreter, rows: list[dict]) -> Report:
    report = Report()
    start = time.perf_counter()
    for row in rows:
        report.outcomes.append(check(interpreter, row))
    report.seconds = time.perf_counter() - start
    return report
