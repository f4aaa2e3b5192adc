"""Accuracy of the rule parser on tests/data/requests.jsonl, by category, on the shipped KG.

    python bench/interpreter_accuracy.py [--failures]

Creates a throwaway workspace from kg_data (no model), parses every labelled request and prints
exact accuracy (operation + triple) per category, and the time per request.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--failures", action="store_true", help="print every request that was read wrong")
    ap.add_argument("--requests", default=str(ROOT / "tests" / "data" / "requests.jsonl"))
    args = ap.parse_args()

    from interpreter import Interpreter
    from interpreter.accuracy import evaluate, load_requests
    from oneedit.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp) / "ws")
        with ws:
            start = time.perf_counter()
            interp = Interpreter.from_kg(ws.kg)
            build = time.perf_counter() - start
            report = evaluate(interp, load_requests(args.requests))
    print(f"interpreter built in {build:.2f} s")
    print(report.table())
    if args.failures:
        for o in report.failures():
            print(f"\n[{o.row['category']}] {o.row['text'][:100]!r}: {o.reason}")
            print("  want:", json.dumps(o.row.get("expect", o.row.get("error")), ensure_ascii=False))
            print("  got: ", json.dumps(o.got, ensure_ascii=False)[:600])


if __name__ == "__main__":
    main()
