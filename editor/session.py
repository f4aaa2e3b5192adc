"""An editable model: a base model plus the edits written into it, persisted and undoable.

State on disk (``state_dir``)::

    edits.json              ordered manifest: id, method, facts/prompts, created, stats
    memit/<edit>-<n>.safetensors   the per-layer factors of each MEMIT delta (fp32)
    grace.safetensors + grace.json the GRACE edit log (keys, values, answers)

Opening a session loads the base model and re-applies every MEMIT delta in order and the GRACE
codebook, so a restart lands in exactly the edited state. ``undo`` of the most recent edit
subtracts its delta (or drops its codebook entries); undo of an older MEMIT edit subtracts its
delta, then re-checks the later edits and re-writes the ones that no longer hold.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path


from editor import hparams as hparams_mod
from editor.covariance import CovarianceCache
from editor.grace import Codebook, GraceAdapter
from editor.loading import LoadedModel
from editor.memit import MemitDelta, Request, compute as memit_compute
from editor.probe import greedy
from editor.verbalize import Prompt
from editor.weights import MasterWeights
from oneedit.core import OneEditError
from oneedit.core.faults import fault

METHODS = ("memit", "grace")


@dataclass
class UndoRecord:
    """What :meth:`EditableModel.apply` changed, enough to take it back."""

    edit_id: str
    method: str
    deltas: list[MemitDelta] = field(default_factory=list)   # MEMIT: the per-layer ΔW factors
    grace_entries: int = 0                                     # GRACE: entries written


def _prompt_dict(p: Prompt) -> dict:
    return {"text": p.text, "target": p.target, "subject": p.subject, "relation": p.relation}


def _prompt_of(d: dict) -> Prompt:
    return Prompt(d["text"], d["target"], d.get("subject", ""), d.get("relation", ""))


def _requests_dict(requests: Sequence[Request]) -> list[dict]:
    return [{"target": r.target, "subject": r.subject, "prompts": [_prompt_dict(p) for p in r.prompts]}
            for r in requests]


def _requests_of(items: Sequence[dict]) -> list[Request]:
    return [Request(tuple(_prompt_of(p) for p in it["prompts"]), it["target"], it["subject"]) for it in items]


class EditableModel:
    def __init__(self, loaded: LoadedModel, state_dir: str | Path | None = None, *,
                 corpus: Sequence[str] | Callable[[], Sequence[str]] = (),
                 stats: CovarianceCache | None = None, hparams: hparams_mod.Hparams | None = None):
        self.loaded = loaded
        self.model = loaded.model
        self.codec = loaded.codec()
        self.hp = hparams or hparams_mod.load(loaded.hparams_name)
        self.state_dir = Path(state_dir) if state_dir else None
        self._corpus = corpus
        self.stats = stats or CovarianceCache()
        self.weights = MasterWeights(self.model)
        self.grace = GraceAdapter(self.model, self.hp.grace).attach()
        self.manifest: list[dict] = []
        self.deltas: dict[str, list[MemitDelta]] = {}
        self.persist = True  # False: edits stay in memory (evaluation runs)
        if self.state_dir:
            self._load_state()

    # -- corpus for covariance ----------------------------------------------------------------
    def corpus(self) -> Sequence[str]:
        if callable(self._corpus):
            self._corpus = list(self._corpus())
        if not self._corpus:
            raise OneEditError(
                "MEMIT needs a text corpus for its key statistics and none was given.",
                hint="Pass --corpus PATH (text or JSONL files) for this model; the default knowledge "
                     "model uses the verbalised KG.")
        return self._corpus

    # -- edits ---------------------------------------------------------------------------------
    def edit_ids(self) -> list[str]:
        return [m["id"] for m in self.manifest]

    def compute_memit(self, requests: Sequence[Request], progress=None, keep: Sequence[Prompt] = ()) -> MemitDelta:
        """The MEMIT delta for ``requests``; the model is left untouched. ``keep``: prompts whose
        answers must not move (see :func:`editor.memit.compute`)."""
        return memit_compute(self.model, self.codec, requests, self.hp.memit, weights=self.weights,
                             stats=self.stats, fingerprint=self.loaded.fingerprint,
                             corpus=self.corpus(), keep=keep, progress=progress)

    def apply_memit(self, edit_id: str, requests: Sequence[Request], delta: MemitDelta) -> UndoRecord:
        self._check_new(edit_id)
        for layer, d in delta.layers.items():
            self.weights.add(layer, d)
        self.deltas[edit_id] = [delta]
        self._record(edit_id, "memit", requests, delta.stats)
        self._save_delta(edit_id, 0, delta)
        fault("model_delta")
        self._save_manifest()
        return UndoRecord(edit_id, "memit", [delta])

    def apply_grace(self, edit_id: str, requests: Sequence[Request], progress=None) -> UndoRecord:
        self._check_new(edit_id)
        items = [(f"{edit_id}#{i}", r.prompts, r.target) for i, r in enumerate(requests)]
        entries, info = self.grace.compute(self.codec, items, progress=progress)
        before = len(self.grace.codebook)
        info.update(self.grace.apply(entries))
        self._record(edit_id, "grace", requests, info)
        self._save_grace()
        fault("model_delta")
        self._save_manifest()
        return UndoRecord(edit_id, "grace", grace_entries=len(self.grace.codebook) - before)

    def edit(self, edit_id: str, requests: Sequence[Request], method: str = "memit", progress=None,
             keep: Sequence[Prompt] = ()) -> UndoRecord:
        if method == "memit":
            return self.apply_memit(edit_id, requests, self.compute_memit(requests, progress, keep))
        if method == "grace":
            return self.apply_grace(edit_id, requests, progress)
        raise OneEditError(f"Unknown editing method {method!r}.", hint="Use memit or grace.")

    def undo(self, edit_id: str, *, recheck: bool = True, progress=None) -> dict:
        """Take an edit out of the model. Returns what happened, including re-applied later edits."""
        idx = next((i for i, m in enumerate(self.manifest) if m["id"] == edit_id), None)
        if idx is None:
            raise OneEditError(f"The model has no edit {edit_id!r}.",
                               hint="List the model's edits with `oneedit model edits`.")
        entry = self.manifest[idx]
        report = {"edit": edit_id, "method": entry["method"], "latest": idx == len(self.manifest) - 1,
                  "rechecked": 0, "reapplied": []}
        if entry["method"] == "memit":
            for delta in reversed(self.deltas.pop(edit_id, [])):
                for layer, d in delta.layers.items():
                    self.weights.add(layer, d, sign=-1.0)
        else:
            prefix = f"{edit_id}#"
            for sub in {e.edit_id for e in self.grace.codebook.log if e.edit_id.startswith(prefix)}:
                self.grace.remove(sub)
            self._save_grace()
        del self.manifest[idx]
        self._drop_delta_files(edit_id)
        self._save_manifest()
        if recheck and entry["method"] == "memit" and not report["latest"]:
            later = [m for m in self.manifest[idx:] if m["method"] == "memit"]
            for m in later:
                reqs = _requests_of(m["requests"])
                failing = [r for r, ok in zip(reqs, self.holds(reqs), strict=True) if not ok]
                report["rechecked"] += 1
                if failing:
                    delta = self.compute_memit(failing, progress)
                    for layer, d in delta.layers.items():
                        self.weights.add(layer, d)
                    self.deltas.setdefault(m["id"], []).append(delta)
                    self._save_delta(m["id"], len(self.deltas[m["id"]]) - 1, delta)
                    m.setdefault("reapplied", []).append({"after_undo_of": edit_id, "facts": len(failing)})
                    report["reapplied"].append({"edit": m["id"], "facts": len(failing)})
            self._save_manifest()
        return report

    def discard(self, edit_id: str) -> bool:
        """Remove every trace of ``edit_id``, even one a crash left half-written (a delta file or
        codebook entries without a manifest entry). Returns whether anything was there."""
        if edit_id in self.edit_ids():
            self.undo(edit_id, recheck=False)
            return True
        found = False
        prefix = f"{edit_id}#"
        subs = {e.edit_id for e in self.grace.codebook.log if e.edit_id.startswith(prefix)}
        for sub in subs:
            self.grace.remove(sub)
        if subs:
            self._save_grace()
            found = True
        if self.state_dir and self._delta_file(edit_id, 0).exists():
            self._drop_delta_files(edit_id)
            found = True
        return found

    def holds(self, requests: Sequence[Request]) -> list[bool]:
        """Whether the model now gives each request's target on its first prompt (greedy)."""
        if not requests:
            return []
        prompts = [r.prompts[0] for r in requests]
        exact, _ = greedy(self.model, self.codec, prompts, targets=[r.target for r in requests])
        return exact

    # -- persistence ----------------------------------------------------------------------------
    def _check_new(self, edit_id: str) -> None:
        if edit_id in self.edit_ids():
            raise OneEditError(f"The model already has an edit {edit_id!r}.",
                               hint="Edit ids are unique; undo the old one first or use a new id.")

    def _record(self, edit_id: str, method: str, requests: Sequence[Request], stats: dict) -> None:
        self.manifest.append({"id": edit_id, "method": method,
                              "created": datetime.now(UTC).isoformat(timespec="seconds"),
                              "requests": _requests_dict(requests),
                              "stats": {k: v for k, v in stats.items() if isinstance(v, int | float | str | list)}})

    def _write_json(self, path: Path, data) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    def _save_manifest(self) -> None:
        if self.state_dir and self.persist:
            self._write_json(self.state_dir / "edits.json",
                             {"model": self.loaded.name, "fingerprint": self.loaded.fingerprint,
                              "edits": self.manifest})

    def _delta_file(self, edit_id: str, n: int) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in edit_id)
        return self.state_dir / "memit" / f"{safe}-{n}.safetensors"

    def _save_delta(self, edit_id: str, n: int, delta: MemitDelta) -> None:
        if not (self.state_dir and self.persist):
            return
        from safetensors.torch import save_file

        f = self._delta_file(edit_id, n)
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp")
        save_file(delta.tensors(), str(tmp), metadata={"edit": edit_id})
        os.replace(tmp, f)

    def _drop_delta_files(self, edit_id: str) -> None:
        if not (self.state_dir and self.persist):
            return
        n = 0
        while (f := self._delta_file(edit_id, n)).exists():
            f.unlink()
            n += 1

    def _save_grace(self) -> None:
        if not (self.state_dir and self.persist):
            return
        from safetensors.torch import save_file

        tensors, meta = self.grace.codebook.tensors()
        f = self.state_dir / "grace.safetensors"
        f.parent.mkdir(parents=True, exist_ok=True)
        if tensors:
            save_file(tensors, str(f.with_suffix(".tmp")))
            os.replace(f.with_suffix(".tmp"), f)
        elif f.exists():
            f.unlink()
        self._write_json(self.state_dir / "grace.json", meta)

    def _load_state(self) -> None:
        from safetensors.torch import load_file

        started = time.perf_counter()
        mf = self.state_dir / "edits.json"
        if not mf.is_file():
            return
        data = json.loads(mf.read_text(encoding="utf-8"))
        if data.get("fingerprint") and data["fingerprint"] != self.loaded.fingerprint:
            raise OneEditError(
                f"The saved edits in {self.state_dir} were made to a different model "
                f"(fingerprint {data['fingerprint']}, this one is {self.loaded.fingerprint}).",
                hint="Open the workspace with the model its edits belong to, or move that folder away "
                     "to start this model without them.")
        self.manifest = data.get("edits", [])
        for m in self.manifest:
            if m["method"] != "memit":
                continue
            n = 0
            while (f := self._delta_file(m["id"], n)).exists():
                delta = MemitDelta.from_tensors(load_file(str(f)))
                for layer, d in delta.layers.items():
                    self.weights.add(layer, d)
                self.deltas.setdefault(m["id"], []).append(delta)
                n += 1
        gj = self.state_dir / "grace.json"
        if gj.is_file():
            meta = json.loads(gj.read_text(encoding="utf-8"))
            gf = self.state_dir / "grace.safetensors"
            tensors = load_file(str(gf)) if gf.is_file() else {}
            self.grace.codebook = Codebook.from_tensors(tensors, meta)
            self.grace.invalidate()
        self.load_seconds = time.perf_counter() - started
