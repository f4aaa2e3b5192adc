"""Helpers for tests that look at the model's edits next to self-repair batches."""

from __future__ import annotations


def own_model_edits(oe) -> list[str]:
    """The model's edit ids without self-repair batches (``oneedit.repair``: whether an edit knocks a
    neighbour over, and so is followed by a repair batch, depends on the trained model)."""
    repairs = {r["model_edit"] for r in oe.ledger.repairs()}
    return [i for i in oe.model.edit_ids() if i not in repairs]
