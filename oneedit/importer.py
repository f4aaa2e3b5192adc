"""Batch import: every request of a file, each its own ledger edit and KG revision, checked in
file order, with the model edited once per batch of accepted lines (one MEMIT batch).

Lines are keyed by the file's content, the line number and the text, so running the same file
again skips what it applied (a file of the same name with other content is another file).
``all_or_nothing`` first reads and plans every line against the KG as it is and applies nothing
when any would not apply.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from controller.users import require
from oneedit.core import OneEditError
from oneedit.core.edit_record import EditRecord
from oneedit.intake import EDIT_OPS
from oneedit.transaction import STATUS_OF, Staged, plan_entities


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def request_key(digest: str, line: int, text: str) -> str:
    """An import line's key: the file's content, the line and its text (not the file's name: two
    files of one name are two files, and a file edited since is another)."""
    return hashlib.sha256(f"{digest}\0{line}\0{' '.join(text.split())}".encode()).hexdigest()[:32]


class Importer:
    def __init__(self, system):
        self.sys = system

    def run(self, path: str | Path, fmt: str | None, actor, *, method: str | None = None, batch_size: int = 64,
            progress: Callable[[int, int], None] | None = None, all_or_nothing: bool = False) -> dict:
        """Apply every request of a batch file; the summary counts each outcome and its ``problems``
        lists the lines that were not applied. ``all_or_nothing``: if any line cannot be read, is
        refused or fails, nothing is applied (:class:`ImportFormatError` lists them)."""
        s = self.sys
        require(actor, "import")
        method = method or s.ws.config.policy.import_method
        path = Path(path)
        results = s.interpreter.parse_file(path, fmt, lenient=True)
        digest = file_digest(path)
        if all_or_nothing:
            self._preflight(path, results, actor)
        done_keys = s.ledger.keys("applied")
        summary = {"file": str(path), "lines": len(results), "applied": 0, "rejected": 0, "needs_review": 0,
                   "failed": 0, "unchanged": 0, "skipped": 0, "model_batches": 0, "repaired": 0, "drifted": 0,
                   "problems": []}
        batch: list[Staged] = []
        started = time.perf_counter()
        try:
            for n, res in enumerate(results, 1):
                line = res.source.line if res.source else n
                key = request_key(digest, line, res.text)
                if key in done_keys:
                    summary["skipped"] += 1
                else:
                    self._line(res, key, actor, method, batch, summary, line)
                if len(batch) >= batch_size:
                    s.transaction.finish(batch, method, summary, flush=False)  # the next batch takes the repairs
                if progress:
                    progress(n, len(results))
        except Exception as exc:  # the lines staged for the unfinished batch are undone with it
            if batch:
                s.transaction.abort([b.edit_id for b in batch], exc)
            raise
        s.transaction.finish(batch, method, summary)
        flushed = s.sync.flush_repairs(method)
        if flushed:
            summary["repaired"] += len(flushed["repaired"])
        summary["seconds"] = round(time.perf_counter() - started, 2)
        return summary

    def _preflight(self, path: Path, results, actor) -> None:
        """Read and plan every line against the KG as it is; raise listing those that would not apply."""
        from oneedit.core import ImportFormatError

        problems = []
        for n, res in enumerate(results, 1):
            line = res.source.line if res.source else n
            intents = [i for i in res.intents if i.op in EDIT_OPS]
            if not intents:
                problems.append(f"line {line}: {'; '.join(res.notes) or 'no edit in this line'}")
                continue
            try:
                plan = self.sys.controller.decide(intents, actor, res.text)
            except OneEditError as exc:
                problems.append(f"line {line}: {exc.message}")
                continue
            if plan.decision == "reject":
                problems.append(f"line {line}: refused: {'; '.join(plan.reasons)}")
        if problems:
            raise ImportFormatError(f"{path.name}: {len(problems)} of {len(results)} line(s) would not apply, so "
                                    "nothing was applied (--all-or-nothing):\n  " + "\n  ".join(problems[:20])
                                    + ("\n  ..." if len(problems) > 20 else ""),
                                    hint="Fix those lines and import again.",
                                    details={"file": str(path), "problems": problems})

    def _line(self, res, key: str, actor, method: str, batch: list[Staged], summary: dict, line: int) -> None:
        s = self.sys
        intents = [i for i in res.intents if i.op in EDIT_OPS]
        if not intents:
            summary["failed"] += 1
            summary["problems"].append({"line": line, "status": "failed",
                                        "reason": "; ".join(res.notes) or "no edit in this line"})
            return
        try:
            plan = s.controller.decide(intents, actor, res.text)
        except OneEditError as exc:
            summary["failed"] += 1
            summary["problems"].append({"line": line, "status": "failed", "reason": exc.message})
            return
        if plan.decision == "noop":
            summary["unchanged"] += 1
            return
        record = EditRecord(plan=plan, method=method,
                            source={"file": str(res.source.file) if res.source else "", "line": line})
        status = STATUS_OF[plan.decision]
        edit_id = s.ledger.create(actor.name, res.text, record, status, request_key=key, entities=plan_entities(plan))
        if status != "pending":
            summary[status] += 1
            summary["problems"].append({"line": line, "edit": edit_id, "status": status,
                                        "reason": "; ".join(plan.reasons)})
            return
        s.transaction.stage(edit_id, res.text, plan, actor.name, record, batch)
