"""Consolidation ("sleep"): fold every live edit into new weights, and swap them in atomically.

Per-edit deltas pile up: each later MEMIT update is solved against a model already carrying the
earlier ones, undo of an older one is only approximate, and unrelated facts drift. Consolidation
rebuilds the model from its original weights with everything the model should now know, and
replaces the stack of edits with one record:

* the **default knowledge model** (learned from the KG) continues training from its original
  weights on the KG as it is now: every fact that changed since it was trained, with rehearsal of
  the unchanged ones (:func:`editor.knowledge.refresh`). The result is a function of the original
  model and the current KG only — so after a rollback, consolidating again gives exactly the model
  that edit never touched;
* **other models** (a hub id or a local directory): the live MEMIT edits are rewritten from the
  base weights in one batch (later edits of the same prompt win); GRACE's codebook is kept.

The swap: the new weights and an empty edit folder are written under new names, then
``active.json`` — the one file that says which weights and edit folder are live — is replaced
(``os.replace``). A crash before that leaves the previous state in force; a crash after it leaves
the new one; leftovers from either are removed by the next consolidation.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from oneedit.core import OneEditError
from oneedit.core.faults import fault


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def _next_index(home: Path) -> int:
    taken = [int(p.name.split("-")[-1]) for p in home.glob("edits-*") if p.name.split("-")[-1].isdigit()]
    taken += [int(p.name) for p in (home / "consolidated").glob("*") if p.name.isdigit()]
    return max(taken, default=0) + 1


def _sweep(home: Path, live: dict) -> None:
    """Remove consolidation outputs that are not live (superseded, or left by a crash)."""
    keep_edits = live.get("edits", "edits")
    keep_weights = live.get("weights")
    for p in home.glob("edits-*"):
        if p.name != keep_edits:
            shutil.rmtree(p, ignore_errors=True)
    if keep_edits != "edits":
        shutil.rmtree(home / "edits", ignore_errors=True)
    for p in (home / "consolidated").glob("*"):
        if f"consolidated/{p.name}" != keep_weights:
            shutil.rmtree(p, ignore_errors=True)


def changed_facts(learned, now) -> list:
    """The facts of ``now`` the model did not learn: new (subject, relation) slots or new objects."""
    before = {(f.subject_id, f.relation): f.object_id for f in learned}
    return [f for f in now if before.get((f.subject_id, f.relation)) != f.object_id]


def consolidate(ws, em, *, progress: Callable[[dict], None] | None = None, config=None) -> dict:
    """Fold the live edits of ``em`` (the workspace's open model) into new weights; returns a report.
    ``em`` is stale afterwards: open the model again."""
    from oneedit import models

    name = em.loaded.name
    started = time.perf_counter()
    if name == models.DEFAULT:
        report = _consolidate_knowledge(ws, em, progress=progress, config=config)
    else:
        report = _consolidate_memit(ws, em, progress=progress)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _consolidate_knowledge(ws, em, *, progress, config) -> dict:
    from editor.knowledge import RefreshConfig, read_card, refresh, write_card
    from oneedit import models
    from oneedit.knowledge import kg_facts, verbalizer

    home = models.home(ws, models.DEFAULT)
    base = models.base_dir(ws)
    learned = models.read_learned(base)
    if learned is None:
        raise OneEditError("This knowledge model was trained before OneEdit recorded the facts it learned, "
                           "so what changed since cannot be found.",
                           hint="Retrain it with `oneedit model train --force` (edits made to it are dropped).")
    now = kg_facts(ws.kg)
    changed = changed_facts(learned, now)
    folded = list(em.edit_ids())
    card = read_card(base) or {}
    live = models.active(ws, models.DEFAULT)
    n = _next_index(home)
    _sweep(home, live)
    out = home / "consolidated" / str(n)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    summary = refresh(base, now, changed, verbalizer(ws.kg.schema), tmp,
                      config=config or RefreshConfig(), share=models._share(card), progress=progress)
    record = {"consolidation": n, "created": datetime.now(UTC).isoformat(timespec="seconds"),
              "kg_revision": ws.kg.store.head(), "folded_edits": folded, "changed_facts": len(changed),
              "method": "refresh", **{k: v for k, v in summary.items() if k not in ("history",)}}
    write_card(tmp, {**card, "consolidated": record})
    models.write_learned(tmp, now)
    corpus = base / models.CORPUS_FILE
    if corpus.is_file():  # the key statistics' corpus stays the frozen one
        shutil.copy2(corpus, tmp / models.CORPUS_FILE)
    os.replace(tmp, out)
    fault("consolidate_weights")
    _swap(home, n, {"weights": f"consolidated/{n}"}, record)
    return record


def _consolidate_memit(ws, em, *, progress) -> dict:
    """Rewrite the live MEMIT edits from the base weights in one batch (the newest request for a
    prompt wins); GRACE entries are carried over as they are."""
    from editor.session import _requests_dict, _requests_of
    from oneedit import models

    home = models.home(ws, em.loaded.name)
    memit = [m for m in em.manifest if m["method"] == "memit"]
    if not memit:
        raise OneEditError("The model has no MEMIT edits to consolidate.")
    latest: dict[str, object] = {}
    for m in memit:
        for r in _requests_of(m["requests"]):
            latest[r.prompts[0].text] = r
    requests = list(latest.values())
    folded = [m["id"] for m in memit]
    for edit_id in reversed(folded):
        em.methods["memit"].remove(edit_id)
    delta = em.compute("memit", requests, progress=(lambda what, done, total: progress(
        {"stage": what, "done": done, "total": total})) if progress else None)
    live = models.active(ws, em.loaded.name)
    n = _next_index(home)
    _sweep(home, live)
    new_dir = home / f"edits-{n}"
    tmp = new_dir.with_name(new_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    old_dir = models.state_dir(ws, em.loaded.name)
    if old_dir.is_dir():
        shutil.copytree(old_dir, tmp)
        shutil.rmtree(tmp / "memit", ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    edit_id = f"consolidated-{n}"
    em.state_dir = tmp
    em.manifest = [m for m in em.manifest if m["method"] != "memit"]
    em.methods["memit"].apply(edit_id, delta)
    em.methods["memit"].save(tmp, edit_id)
    record = {"consolidation": n, "created": datetime.now(UTC).isoformat(timespec="seconds"),
              "folded_edits": folded, "requests": len(requests), "method": "memit",
              "written": delta.stats.get("written")}
    em.manifest.insert(0, {"id": edit_id, "method": "memit", "created": record["created"],
                           "requests": _requests_dict(requests), "stats": {"consolidated": folded}})
    _write_json(tmp / "edits.json", {"model": em.loaded.name, "fingerprint": em.loaded.fingerprint,
                                     "edits": em.manifest, "consolidated": record})
    os.replace(tmp, new_dir)
    fault("consolidate_weights")
    _swap(home, n, {}, record, edits_ready=True)
    return record


def _swap(home: Path, n: int, weights: dict, record: dict, *, edits_ready: bool = False) -> None:
    """Commit consolidation ``n``: an edit folder for it (empty unless ``edits_ready``), then the
    pointer. Everything before the ``os.replace`` of ``active.json`` is invisible to readers."""
    from oneedit import models

    edits = home / f"edits-{n}"
    if not edits_ready:
        tmp = edits.with_name(edits.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _write_json(tmp / "edits.json", {"edits": [], "consolidated": record})
        os.replace(tmp, edits)
    fault("consolidate_swap")
    _write_json(home / models.ACTIVE, {**weights, "edits": edits.name, "consolidation": n})
    fault("consolidated")
    _sweep(home, {**weights, "edits": edits.name})
