"""GRACE's codebook: keys, values and radii at one layer, every entry tagged with the edits behind it.

GRACE (Hartvigsen et al., 2023) adds an entry per edited key; a key that falls inside an entry
with the same answer *grows* that entry's radius to cover it, one with a different answer *splits*
the two so they stop overlapping. Here each entry remembers why its radius is what it is:

* ``eps`` — its initial radius;
* ``grows`` — per edit whose key it absorbed, the distance to that key (and which key it was);
* ``caps`` — per neighbouring entry it was split from, half the distance between them;

and its radius is ``min(max(eps, grows…), caps…)``, which does not depend on the order the events
came in. Removing an edit therefore costs O(entries): drop its entries and the grows and caps it
caused, recompute the radii that changed, and re-insert the keys of other edits that one of its
deleted entries had absorbed. Adding an edit is one distance computation per key against the
whole codebook, O(entries), into storage that grows by doubling (no re-stacking).

A key at the very position of an entry with another answer (the same prompt edited again)
*supersedes* it: the later answer wins and the earlier one comes back when the later edit goes
(each entry keeps a stack of owners), where the paper's split would leave both radii at zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: keys closer than this (relative to the key's norm) are the same prompt read again
SAME_KEY = 1e-6
#: a grown radius reaches this much (relative) past the key it grows to cover
GROW_SLACK = 1e-3


@dataclass
class GraceEdit:
    """What one edit contributes: its keys (one per prompt), one value, the answer it writes."""

    edit_id: str
    keys: torch.Tensor    # (n_keys, d_in) float32, CPU
    value: torch.Tensor   # (d_out,) float32, CPU
    target: str
    epsilon: float


@dataclass(eq=False)
class _Entry:
    uid: int
    eps: float
    owners: list[str]                                            # stack of edit ids; the last one answers
    answer: str = ""                                             # the last owner's answer
    grows: dict[str, float] = field(default_factory=dict)        # edit id -> distance of the key absorbed
    absorbed: dict[str, list[int]] = field(default_factory=dict)  # edit id -> rows of its keys absorbed
    caps: dict[int, float] = field(default_factory=dict)         # neighbour uid -> half the distance

    def radius(self) -> float:
        r = max([self.eps, *self.grows.values()])
        return min([r, *self.caps.values()])


class Codebook:
    def __init__(self, distance: str = "euclidean"):
        self.distance = distance
        self.edits: dict[str, GraceEdit] = {}   # in the order they were added
        self._entries: list[_Entry] = []
        self._keys = torch.empty(0, 0)
        self._values = torch.empty(0, 0)
        self._radii = torch.empty(0)
        self._next_uid = 0
        self._order: dict[str, int] = {}       # edit id -> when it was added
        self._next_order = 0
        self.version = 0                        # bumped on every change (device copies follow it)

    # -- reading -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._entries)

    @property
    def keys(self) -> torch.Tensor:
        return self._keys[: len(self)]

    @property
    def radii(self) -> torch.Tensor:
        return self._radii[: len(self)]

    def entry_values(self) -> torch.Tensor:
        return self._values[: len(self)]

    @property
    def owner(self) -> list[str]:
        return [e.owners[-1] for e in self._entries]

    @property
    def answer(self) -> list[str]:
        return [e.answer for e in self._entries]

    def edit_ids(self) -> list[str]:
        return list(self.edits)

    def dist(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        if self.distance == "cosine":
            q = torch.nn.functional.normalize(query.float(), dim=-1)
            k = torch.nn.functional.normalize(keys.float(), dim=-1)
            return 1.0 - q @ k.T
        # the direct difference, not cdist's |q|² + |k|² - 2qk form: that one loses ~1e-3 of a key's
        # norm to cancellation, more than a radius may be, and differs with the batch's shape
        return torch.cdist(query.float(), keys.float(), compute_mode="donot_use_mm_for_euclid_dist")

    def lookup(self, query: torch.Tensor, keys: torch.Tensor | None = None,
               radii: torch.Tensor | None = None) -> torch.Tensor:
        """Per query row, the nearest entry whose radius covers it, or -1 (``keys``/``radii``: the
        codebook's tensors already on the query's device)."""
        keys = self.keys if keys is None else keys
        radii = self.radii if radii is None else radii
        if not len(self):
            return torch.full((query.shape[0],), -1, dtype=torch.long, device=query.device)
        d = self.dist(query, keys)
        d = torch.where(d <= radii[None, :], d, torch.full_like(d, float("inf")))
        best, idx = d.min(dim=1)
        return torch.where(torch.isfinite(best), idx, torch.full_like(idx, -1))

    # -- adding ----------------------------------------------------------------------------------
    def add(self, edit: GraceEdit) -> dict:
        if edit.edit_id in self.edits:
            raise ValueError(f"edit {edit.edit_id!r} is already in the codebook")
        self.edits[edit.edit_id] = edit
        self._order[edit.edit_id] = self._next_order
        self._next_order += 1
        totals = {"added": 0, "grown": 0, "split": 0, "superseded": 0}
        for row in range(edit.keys.shape[0]):
            totals[self._insert(edit, row)] += 1
        self.version += 1
        return totals

    def _insert(self, edit: GraceEdit, row: int) -> str:
        key = edit.keys[row].float()
        d = None
        if len(self):
            d = self.dist(key[None], self.keys)[0]
            near = (d < self.radii + edit.epsilon).nonzero()[:, 0].tolist()   # the few entries in reach
            same_key = SAME_KEY * max(1.0, float(key.norm()))
            coincident = [j for j in near if float(d[j]) <= same_key and self._entries[j].answer != edit.target]
            if coincident:
                # the very prompt of an earlier edit, now with another answer. Owners stay in edit
                # order: the latest edit of the prompt answers (a key re-inserted after a removal
                # may be older than the entry's present answer)
                i = coincident[0]
                entry = self._entries[i]
                entry.owners.append(edit.edit_id)
                entry.owners.sort(key=self._order.__getitem__)
                if entry.owners[-1] == edit.edit_id:
                    entry.answer = edit.target
                    self._values[i] = edit.value.float()
                    self._release(i)   # keys it had absorbed for the old answer get entries of their own
                    self._enforce(i)
                return "superseded"
            # grow the nearest entry with this answer that can cover the key
            same = sorted((float(d[j]), j) for j in near if self._entries[j].answer == edit.target)
            if same:
                i = same[0][1]
                entry = self._entries[i]
                # grow a hair past the key: a generation pass reads it with other padding and
                # batch shapes, a few 1e-6 of its norm away from where it was written
                di = float(d[i]) * (1 + GROW_SLACK)
                grown = max(entry.grows.get(edit.edit_id, 0.0), di)
                if min([max(entry.eps, grown, *entry.grows.values()), *entry.caps.values()]) >= di:
                    entry.grows[edit.edit_id] = grown
                    entry.absorbed.setdefault(edit.edit_id, []).append(row)
                    self._radii[i] = entry.radius()
                    self._enforce(i)
                    return "grown"
        self._append(key, edit, edit.epsilon)
        if d is not None:   # the new entry's distances to the others are the key's
            d = torch.cat([d, d.new_zeros(1)])
        return "split" if self._enforce(len(self) - 1, d) else "added"

    def _enforce(self, i: int, d: torch.Tensor | None = None) -> bool:
        """No entry with another answer may overlap entry ``i``: where one does, both are capped at
        half the distance between them (GRACE's split), and keys they absorbed that fall outside
        the capped radius get entries of their own. Returns whether anything was capped."""
        entry = self._entries[i]
        if d is None:
            d = self.dist(self._keys[i: i + 1], self.keys)[0]
        near = (d < self.radii + float(self._radii[i])).nonzero()[:, 0].tolist()
        clash = [j for j in near if self._entries[j].answer != entry.answer]
        for j in clash:
            # a hair under half, so a point half-way between is in neither
            half = float(d[j]) / 2 * (1 - 1e-6)
            nb = self._entries[j]
            entry.caps[nb.uid] = min(entry.caps.get(nb.uid, half), half)
            nb.caps[entry.uid] = min(nb.caps.get(entry.uid, half), half)
            self._radii[j] = nb.radius()
        self._radii[i] = entry.radius()
        for j in clash:
            self._release(j)
        if clash:
            self._release(i)
        return bool(clash)

    def _index(self, entry: _Entry) -> int:
        return next(i for i, e in enumerate(self._entries) if e is entry)

    def _release(self, i: int) -> None:
        """Re-insert the keys entry ``i`` absorbed that it no longer answers for: outside its radius,
        or of an edit whose answer is not the entry's answer any more."""
        entry = self._entries[i]
        answer = entry.answer
        out: list[tuple[str, int]] = []
        for e, rows in list(entry.absorbed.items()):
            if self.edits[e].target != answer:
                out += [(e, r) for r in rows]
                del entry.absorbed[e]
                entry.grows.pop(e, None)
        self._radii[i] = entry.radius()
        for e, rows in list(entry.absorbed.items()):
            d = self.dist(self.edits[e].keys[rows].float(), self._keys[i: i + 1])[:, 0].tolist()
            far = [r for r, x in zip(rows, d, strict=True) if x > float(self._radii[i])]
            if not far:
                continue
            out += [(e, r) for r in far]
            keep = [(r, x) for r, x in zip(rows, d, strict=True) if r not in far]
            if keep:
                entry.absorbed[e] = [r for r, _ in keep]
                entry.grows[e] = max(x for _, x in keep) * (1 + GROW_SLACK)
            else:
                del entry.absorbed[e]
                entry.grows.pop(e, None)
        self._radii[i] = entry.radius()
        for e, row in out:
            self._insert(self.edits[e], row)

    def _append(self, key: torch.Tensor, edit: GraceEdit, eps: float) -> _Entry:
        n = len(self)
        if n == self._keys.shape[0]:
            self._grow(max(16, 2 * n), key.shape[0], edit.value.shape[0])
        self._keys[n] = key
        self._values[n] = edit.value.float()
        self._radii[n] = eps
        entry = _Entry(self._next_uid, eps, [edit.edit_id], edit.target)
        self._next_uid += 1
        self._entries.append(entry)
        return entry

    def _grow(self, capacity: int, d_in: int, d_out: int) -> None:
        n = len(self)
        keys, values, radii = torch.zeros(capacity, d_in), torch.zeros(capacity, d_out), torch.zeros(capacity)
        if n:
            keys[:n], values[:n], radii[:n] = self._keys[:n], self._values[:n], self._radii[:n]
        self._keys, self._values, self._radii = keys, values, radii

    # -- removing --------------------------------------------------------------------------------
    def remove(self, edit_id: str) -> int:
        """Take an edit out; returns how many entries went. O(entries), plus re-inserting the keys of
        other edits that one of its entries had absorbed."""
        if edit_id not in self.edits:
            return 0
        del self.edits[edit_id]
        del self._order[edit_id]
        dead: list[int] = []
        changed_answer: list[_Entry] = []
        reinsert: list[tuple[str, int]] = []
        for i, entry in enumerate(self._entries):
            top = entry.owners[-1]
            if edit_id in entry.owners:
                entry.owners = [o for o in entry.owners if o != edit_id]
            entry.grows.pop(edit_id, None)
            entry.absorbed.pop(edit_id, None)
            if not entry.owners:
                dead.append(i)
                reinsert += [(e, row) for e, rows in entry.absorbed.items() for row in rows]
            elif entry.owners[-1] != top:
                self._values[i] = self.edits[entry.owners[-1]].value.float()
                entry.answer = self.edits[entry.owners[-1]].target
                changed_answer.append(entry)
        if dead:
            gone = {self._entries[i].uid for i in dead}
            keep = torch.ones(len(self), dtype=torch.bool)
            keep[dead] = False
            n = int(keep.sum())
            self._keys[:n] = self._keys[: len(self)][keep]
            self._values[:n] = self._values[: len(self)][keep]
            self._radii[:n] = self._radii[: len(self)][keep]
            self._entries = [e for e, k in zip(self._entries, keep.tolist(), strict=True) if k]
            for entry in self._entries:
                for uid in gone & entry.caps.keys():
                    del entry.caps[uid]
        n = len(self)
        radii = torch.tensor([e.radius() for e in self._entries], dtype=self._radii.dtype)
        widened = [self._entries[i] for i in (radii > self._radii[:n]).nonzero()[:, 0].tolist()]
        self._radii[:n] = radii
        for e, row in reinsert:
            self._insert(self.edits[e], row)
        for entry in {id(x): x for x in changed_answer + widened}.values():
            i = self._index(entry)
            self._release(i)
            self._enforce(self._index(entry))
        self.version += 1
        return len(dead)

    # -- persistence -----------------------------------------------------------------------------
    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """Tensors and JSON metadata that :meth:`from_state` turns back into this codebook, O(entries)."""
        edits = list(self.edits.values())
        tensors = {"keys": self.keys.contiguous().clone(), "values": self.entry_values().contiguous().clone()}
        if edits:
            tensors["edit_keys"] = torch.cat([e.keys.float() for e in edits]).contiguous()
            tensors["edit_values"] = torch.stack([e.value.float() for e in edits]).contiguous()
        meta = {"format": 2, "distance": self.distance, "next_uid": self._next_uid,
                "edits": [{"edit_id": e.edit_id, "target": e.target, "epsilon": e.epsilon,
                           "keys": int(e.keys.shape[0])} for e in edits],
                "entries": [{"uid": x.uid, "eps": x.eps, "owners": x.owners, "grows": x.grows,
                             "absorbed": x.absorbed, "caps": {str(k): v for k, v in x.caps.items()}}
                            for x in self._entries]}
        return tensors, meta

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], meta: dict) -> Codebook:
        book = cls(meta.get("distance", "euclidean"))
        if meta.get("format") != 2:  # an edit log from before entries were saved: replay it
            for i, m in enumerate(meta.get("edits", [])):
                book.add(GraceEdit(m["edit_id"], tensors[f"e{i}.keys"], tensors[f"e{i}.value"],
                                   m["target"], float(m["epsilon"])))
            return book
        at = 0
        for i, m in enumerate(meta["edits"]):
            n = int(m["keys"])
            book.edits[m["edit_id"]] = GraceEdit(m["edit_id"], tensors["edit_keys"][at: at + n].clone(),
                                                 tensors["edit_values"][i].clone(), m["target"], float(m["epsilon"]))
            at += n
        book._order = {e: i for i, e in enumerate(book.edits)}
        book._next_order = len(book.edits)
        book._entries = [_Entry(x["uid"], float(x["eps"]), list(x["owners"]),
                                book.edits[x["owners"][-1]].target, dict(x["grows"]),
                                {k: list(v) for k, v in x["absorbed"].items()},
                                {int(k): float(v) for k, v in x["caps"].items()}) for x in meta["entries"]]
        n = len(book._entries)
        if n:
            book._keys = tensors["keys"].float().clone()
            book._values = tensors["values"].float().clone()
            book._radii = torch.tensor([e.radius() for e in book._entries])
        book._next_uid = int(meta.get("next_uid", n))
        return book

    def same_as(self, other: Codebook) -> bool:
        """Entries, keys, values, radii and owners equal (the order of entries aside)."""
        if len(self) != len(other) or self.edit_ids() != other.edit_ids():
            return False

        def rows(book):
            return sorted((tuple(book.keys[i].tolist()), tuple(book.entry_values()[i].tolist()),
                           round(float(book.radii[i]), 6), book.owner[i]) for i in range(len(book)))
        return rows(self) == rows(other)
