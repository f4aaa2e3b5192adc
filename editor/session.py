"""An editable model: a base model plus the edits written into it, persisted and undoable.

State on disk (``state_dir``)::

    edits.json                      ordered manifest: id, method, facts/prompts, created, stats
    memit/<edit>-<n>.safetensors    the per-layer factors of each MEMIT delta (fp32)
    grace.safetensors + grace.json  the GRACE codebook (entries, radii, the edits behind them)

Opening a session loads the base model and re-applies every saved edit, so a restart lands in
exactly the edited state. The methods live in :mod:`editor.methods` (MEMIT, GRACE); this class
runs them, keeps the manifest, and owns what they share: the fp32 master weights and the key
statistics, which are always computed on the unedited base model. ``undo`` of the most recent
edit takes its change back exactly; undo of an older MEMIT edit subtracts its delta, then
re-checks the later edits and re-writes the ones that no longer hold.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from editor import arch
from editor import hparams as hparams_mod
from editor.covariance import CovarianceCache
from editor.loading import LoadedModel
from editor.memit.main import MemitDelta
from editor.methods import EditMethod, method_class, registry
from editor.probe import greedy
from editor.request import Request
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
        self.hp.check_depth(arch.num_layers(self.model))
        self.state_dir = Path(state_dir) if state_dir else None
        self._corpus = corpus
        self.stats = stats or CovarianceCache()
        self.weights = MasterWeights(self.model)
        self.methods: dict[str, EditMethod] = {name: cls(self) for name, cls in registry().items()}
        self.manifest: list[dict] = []
        #: the consolidation this edit folder starts from (what it folded), kept across saves
        self.consolidated: dict | None = None
        self.persist = True  # False: edits stay in memory (evaluation runs)
        #: ``(tokens done, tokens in all)`` while key statistics are computed (the CLI's progress bar)
        self.stats_progress: Callable[[int, int], None] | None = None
        if self.state_dir:
            self._load_state()

    def check_writable(self) -> None:
        """Raise :class:`OneEditError` unless an edit can be saved in ``state_dir`` (checked before
        the KG is changed, so a model that cannot be written never leaves a half-made edit)."""
        if not self.state_dir or not self.persist:
            return
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.state_dir, prefix=".write-check-"):
                pass
        except OSError as exc:
            raise OneEditError(f"The model's edit folder {self.state_dir} cannot be written "
                               f"({exc.strerror or exc}); nothing was changed.",
                               hint="Make the folder writable (and check the free disk space), then try again.") from None

    @property
    def grace(self):
        """GRACE's adapter (its layer and codebook)."""
        return self.methods["grace"].adapter

    @property
    def deltas(self) -> dict[str, list[MemitDelta]]:
        return self.methods["memit"].deltas

    # -- what the methods share -------------------------------------------------------------------
    def corpus(self) -> Sequence[str]:
        if callable(self._corpus):
            self._corpus = list(self._corpus())
        if not self._corpus:
            raise OneEditError(
                "MEMIT needs a text corpus for its key statistics and none was given.",
                hint="Pass --corpus PATH (text or JSONL files) for this model; the default knowledge "
                     "model uses the verbalised KG.")
        return self._corpus

    def key_statistics(self, layers: Sequence[int]) -> dict:
        """MEMIT's ``C`` per layer, computed (or read from the cache) on the unedited base model:
        every edited projection at its base value and the GRACE codebook off, whatever edits the
        model carries — so the statistics match the base fingerprint they are cached under."""
        corpus = self.corpus()
        grace = self.grace
        was = grace.enabled
        grace.enabled = False
        try:
            with self.weights.base():
                return self.stats.moments(self.model, self.codec, self.loaded.fingerprint, list(layers), corpus,
                                          samples=self.hp.memit.cov_samples,
                                          tokens_per_dim=self.hp.memit.cov_tokens_per_dim,
                                          progress=self.stats_progress)
        finally:
            grace.enabled = was

    # -- edits -------------------------------------------------------------------------------------
    def edit_ids(self) -> list[str]:
        return [m["id"] for m in self.manifest]

    def compute(self, method: str, requests: Sequence[Request], *, edit_id: str = "pending",
                keep: Sequence[Prompt] = (), progress=None):
        """What ``method`` would write for ``requests``; the model is left untouched."""
        if not requests:
            raise OneEditError("Nothing to edit: no requests.")
        return self._method(method).compute(edit_id, requests, keep=keep, progress=progress)

    def apply(self, edit_id: str, method: str, requests: Sequence[Request], payload) -> UndoRecord:
        self._check_new(edit_id)
        m = self._method(method)
        before = len(self.grace.codebook)
        stats = m.apply(edit_id, payload)
        self._record(edit_id, method, requests, stats)
        if self.state_dir and self.persist:
            m.save(self.state_dir, edit_id)
        fault("model_delta")
        self._save_manifest()
        if method == "memit":
            return UndoRecord(edit_id, method, [payload])
        return UndoRecord(edit_id, method, grace_entries=len(self.grace.codebook) - before)

    def compute_memit(self, requests: Sequence[Request], progress=None, keep: Sequence[Prompt] = ()) -> MemitDelta:
        """The MEMIT delta for ``requests``; the model is left untouched. ``keep``: prompts whose
        answers must not move (see :func:`editor.memit.compute`)."""
        return self.compute("memit", requests, keep=keep, progress=progress)

    def apply_memit(self, edit_id: str, requests: Sequence[Request], delta: MemitDelta) -> UndoRecord:
        return self.apply(edit_id, "memit", requests, delta)

    def apply_grace(self, edit_id: str, requests: Sequence[Request], progress=None) -> UndoRecord:
        self._check_new(edit_id)
        return self.apply(edit_id, "grace", requests, self.compute("grace", requests, edit_id=edit_id,
                                                                    progress=progress))

    def edit(self, edit_id: str, requests: Sequence[Request], method: str = "memit", progress=None,
             keep: Sequence[Prompt] = ()) -> UndoRecord:
        self._check_new(edit_id)
        payload = self.compute(method, requests, edit_id=edit_id, keep=keep if method == "memit" else (),
                               progress=progress)
        return self.apply(edit_id, method, requests, payload)

    def undo(self, edit_id: str, *, recheck: bool = True, progress=None) -> dict:
        """Take an edit out of the model. Returns what happened, including re-applied later edits."""
        idx = next((i for i, m in enumerate(self.manifest) if m["id"] == edit_id), None)
        if idx is None:
            raise OneEditError(f"The model has no edit {edit_id!r}.",
                               hint="List the model's edits with `oneedit model edits`.")
        entry = self.manifest[idx]
        report = {"edit": edit_id, "method": entry["method"], "latest": idx == len(self.manifest) - 1,
                  "rechecked": 0, "reapplied": []}
        m = self._method(entry["method"])
        m.remove(edit_id)
        del self.manifest[idx]
        if self.state_dir and self.persist:
            m.save(self.state_dir, edit_id)
        self._save_manifest()
        if recheck and entry["method"] == "memit" and not report["latest"]:
            memit = self.methods["memit"]
            for later in [x for x in self.manifest[idx:] if x["method"] == "memit"]:
                reqs = _requests_of(later["requests"])
                failing = [r for r, ok in zip(reqs, self.holds(reqs), strict=True) if not ok]
                report["rechecked"] += 1
                if failing:
                    memit.apply(later["id"], memit.compute(later["id"], failing, progress=progress))
                    if self.state_dir and self.persist:
                        memit.save(self.state_dir, later["id"])
                    later.setdefault("reapplied", []).append({"after_undo_of": edit_id, "facts": len(failing)})
                    report["reapplied"].append({"edit": later["id"], "facts": len(failing)})
            self._save_manifest()
        return report

    def discard(self, edit_id: str) -> bool:
        """Remove every trace of ``edit_id``, even one a crash left half-written (a delta file or
        codebook entries without a manifest entry). Returns whether anything was there."""
        if edit_id in self.edit_ids():
            self.undo(edit_id, recheck=False)
            return True
        found = False
        for m in self.methods.values():
            if m.remove(edit_id):
                found = True
            if self.state_dir and self.persist:
                m.save(self.state_dir, edit_id)
        if self.state_dir:
            from editor.memit.method import delta_file

            n = 0
            while (f := delta_file(self.state_dir, edit_id, n)).exists():
                f.unlink()
                found = True
                n += 1
        return found

    def holds(self, requests: Sequence[Request]) -> list[bool]:
        """Whether the model now gives each request's target on its first prompt (greedy)."""
        if not requests:
            return []
        prompts = [r.prompts[0] for r in requests]
        exact, _ = greedy(self.model, self.codec, prompts, targets=[r.target for r in requests])
        return exact

    def export(self, path: str | Path, *, dtype=None, force: bool = False, skip_grace: bool = False,
               **kw) -> dict:
        """Write the model with its MEMIT edits merged as a plain Hugging Face directory (see
        :func:`editor.export.export`); returns a summary."""
        from editor.export import export

        return export(self, path, dtype=dtype, force=force, skip_grace=skip_grace, **kw)

    # -- persistence -------------------------------------------------------------------------------
    def _method(self, name: str) -> EditMethod:
        method_class(name)  # a clear error for unknown names
        return self.methods[name]

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
            data = {"model": self.loaded.name, "fingerprint": self.loaded.fingerprint, "edits": self.manifest}
            if self.consolidated:
                data["consolidated"] = self.consolidated
            self._write_json(self.state_dir / "edits.json", data)

    def _load_state(self) -> None:
        started = time.perf_counter()
        mf = self.state_dir / "edits.json"
        if not mf.is_file():
            return
        try:
            data = json.loads(mf.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            raise OneEditError(f"{mf} is not a readable edit manifest ({exc}).",
                               hint="Restore it from a backup, or move the model's edit folder aside to start "
                                    "the model without its edits (`oneedit model consolidate` rebuilds them "
                                    "from the KG for the default model).") from None
        if data.get("fingerprint") and data["fingerprint"] != self.loaded.fingerprint:
            raise OneEditError(
                f"The saved edits in {self.state_dir} were made to a different model "
                f"(fingerprint {data['fingerprint']}, this one is {self.loaded.fingerprint}).",
                hint="Open the workspace with the model its edits belong to, or move that folder away "
                     "to start this model without them.")
        self.manifest = data.get("edits", [])
        self.consolidated = data.get("consolidated")
        for name, m in self.methods.items():
            m.load(self.state_dir, [x["id"] for x in self.manifest if x["method"] == name])
        self.load_seconds = time.perf_counter() - started
