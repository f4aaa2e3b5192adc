"""GRACE as an editing method: one codebook sub-edit per request (``<edit>#<i>``), the codebook
saved whole (O(entries)) after each change."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from editor.grace.codebook import Codebook, GraceEdit
from editor.grace.router import GraceAdapter
from editor.grace.values import compute
from editor.methods import EditMethod


class GraceMethod(EditMethod):
    name = "grace"

    def __init__(self, session):
        super().__init__(session)
        self.adapter = GraceAdapter(session.model, session.hp.grace).attach()

    def compute(self, edit_id, requests, *, keep=(), progress=None) -> list[GraceEdit]:
        items = [(f"{edit_id}#{i}", r.prompts, r.target) for i, r in enumerate(requests)]
        entries, info = compute(self.adapter, self.session.codec, items, progress=progress)
        self.last_info = info
        return entries

    def apply(self, edit_id: str, payload: list[GraceEdit]) -> dict:
        before = len(self.adapter.codebook)
        totals = {"added": 0, "grown": 0, "split": 0, "superseded": 0}
        for e in payload:
            for k, v in self.adapter.codebook.add(e).items():
                totals[k] += v
        self.adapter.invalidate()
        info = dict(getattr(self, "last_info", {}))
        info.update(totals, entries=len(self.adapter.codebook) - before)
        return info

    def sub_edits(self, edit_id: str) -> list[str]:
        prefix = f"{edit_id}#"
        return [e for e in self.adapter.codebook.edit_ids() if e.startswith(prefix)]

    def remove(self, edit_id: str) -> bool:
        subs = self.sub_edits(edit_id)
        for sub in subs:
            self.adapter.codebook.remove(sub)
        self.adapter.invalidate()
        return bool(subs)

    def save(self, state_dir: Path, edit_id: str) -> None:
        from safetensors.torch import save_file

        tensors, meta = self.adapter.codebook.state()
        state_dir.mkdir(parents=True, exist_ok=True)
        f = state_dir / "grace.safetensors"
        if len(self.adapter.codebook.edits):
            save_file(tensors, str(f.with_suffix(".tmp")))
            os.replace(f.with_suffix(".tmp"), f)
        elif f.exists():
            f.unlink()
        tmp = state_dir / "grace.json.tmp"
        tmp.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, state_dir / "grace.json")

    def load(self, state_dir: Path, edit_ids: Sequence[str]) -> None:
        from safetensors.torch import load_file

        gj = state_dir / "grace.json"
        if gj.is_file():
            meta = json.loads(gj.read_text(encoding="utf-8"))
            gf = state_dir / "grace.safetensors"
            tensors = load_file(str(gf)) if gf.is_file() else {}
            self.adapter.codebook = Codebook.from_state(tensors, meta)
            self.adapter.invalidate()

    @property
    def codebook(self) -> Codebook:
        return self.adapter.codebook
