"""MEMIT as an editing method: deltas per edit, saved as safetensors, undone by subtraction."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from editor import arch
from editor.memit.main import MemitDelta, apply, compute
from editor.memit.preserve import PreservedKeys
from editor.methods import EditMethod


def delta_file(state_dir: Path, edit_id: str, n: int) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in edit_id)
    return state_dir / "memit" / f"{safe}-{n}.safetensors"


class MemitMethod(EditMethod):
    name = "memit"

    def __init__(self, session):
        super().__init__(session)
        self.deltas: dict[str, list[MemitDelta]] = {}
        #: the live edits' key columns per layer (held in place with ``preserve_edits``)
        self.preserved = PreservedKeys()

    def compute(self, edit_id, requests, *, keep=(), progress=None) -> MemitDelta:
        s = self.session
        # a device map that keeps an edited projection on disk: refused before any work
        s.weights.check_writable(s.hp.memit.resolve_layers(arch.num_layers(s.model)))
        return compute(s.model, s.codec, requests, s.hp.memit, weights=s.weights, stats=s.stats,
                       fingerprint=s.loaded.fingerprint, moments=s.key_statistics, keep=keep,
                       preserved=self.preserved, progress=progress)

    def _track(self, delta: MemitDelta, sign: float) -> None:
        for layer, d in delta.layers.items():
            if d.keys is not None:
                self.preserved.add(layer, d.keys, sign)

    def apply(self, edit_id: str, payload: MemitDelta) -> dict:
        apply(self.session.weights, payload)
        self._track(payload, 1.0)
        self.deltas.setdefault(edit_id, []).append(payload)
        return dict(payload.stats)

    def remove(self, edit_id: str) -> bool:
        deltas = self.deltas.pop(edit_id, [])
        for delta in reversed(deltas):
            apply(self.session.weights, delta, sign=-1.0)
            self._track(delta, -1.0)
        return bool(deltas)

    def save(self, state_dir: Path, edit_id: str) -> None:
        from safetensors.torch import save_file

        deltas = self.deltas.get(edit_id, [])
        for n, delta in enumerate(deltas):
            f = delta_file(state_dir, edit_id, n)
            if f.exists():
                continue
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_suffix(".tmp")
            save_file(delta.tensors(), str(tmp), metadata={"edit": edit_id})
            os.replace(tmp, f)
        if n_files(state_dir, edit_id) > len(deltas):
            n = len(deltas)
            while (f := delta_file(state_dir, edit_id, n)).exists():
                f.unlink()
                n += 1

    def load(self, state_dir: Path, edit_ids: Sequence[str]) -> None:
        from safetensors.torch import load_file

        for edit_id in edit_ids:
            n = 0
            while (f := delta_file(state_dir, edit_id, n)).exists():
                delta = MemitDelta.from_tensors(load_file(str(f)))
                apply(self.session.weights, delta)
                self._track(delta, 1.0)
                self.deltas.setdefault(edit_id, []).append(delta)
                n += 1


def n_files(state_dir: Path, edit_id: str) -> int:
    n = 0
    while delta_file(state_dir, edit_id, n).exists():
        n += 1
    return n
