"""Atomic edits across crashes: the CLI process is killed (SIGKILL) at each stage of an edit and of
a rollback; after a restart the ledger, the KG and the model's outputs agree — no lost and no
half-applied edit. The crash points are ``oneedit.core.faults.fault`` calls (``$ONEEDIT_CRASH_AT``).
"""

from __future__ import annotations

import json
import signal

import pytest

from oneedit.system import OneEdit
from oneedit.workspace import Workspace
from tests.process_support import cli
from tests.repair_support import own_model_edits

EDIT = "The capital of Germany is Hamburg"
PROMPT = "The capital of Germany is"


def state(ws) -> dict:
    """What the restarted system says, after its recovery ran."""
    from editor.verbalize import Prompt

    with Workspace.open(ws) as w:
        oe = OneEdit(w)
        oe.recover()
        st = w.kg.store
        entries = oe.ledger.list(limit=None, ascending=True)
        return {
            "statuses": [e.status for e in entries],
            "capital": st.objects("germany", "capital"),
            "hamburg_capital_of": st.objects("hamburg", "capital_of"),
            "pending_revisions": st.log.pending(),
            "model_edits": own_model_edits(oe),
            "model_says": oe.sync.answers([("train", Prompt(PROMPT, "", ""))])[0],
            "delta_files": sorted(p.name for p in (w.root / "model" / "edits").rglob("*.safetensors")),
            "journal_open": [e.id for e in entries if e.record.in_flight],
        }


@pytest.mark.parametrize("stage", ["ledger", "kg_apply", "kg", "model_delta", "model"])
def test_crash_during_an_edit_leaves_nothing_half_applied(copy_ws, stage):
    run = cli(copy_ws, "edit", EDIT, "--yes", "--method", "memit", crash=stage)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    s = state(copy_ws)
    assert s["statuses"] == ["failed"]
    assert s["capital"] == ["berlin"] and s["hamburg_capital_of"] == []
    assert s["pending_revisions"] == [] and s["model_edits"] == [] and s["delta_files"] == []
    assert s["model_says"] == "Berlin"
    assert s["journal_open"] == []
    with Workspace.open(copy_ws) as w:
        failure = w.ledger.get(1).record.failure
    assert failure["reason"].startswith("interrupted")
    if stage != "kg":
        return
    # the same request goes through afterwards
    again = cli(copy_ws, "edit", EDIT, "--yes", "--method", "memit")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["status"] == "applied"
    s = state(copy_ws)
    assert s["statuses"] == ["failed", "applied"] and s["capital"] == ["hamburg"] and s["model_says"] == "Hamburg"


def test_crash_after_the_ledger_says_applied_keeps_the_edit(copy_ws):
    run = cli(copy_ws, "edit", EDIT, "--yes", "--method", "memit", crash="applied")
    assert run.returncode == -signal.SIGKILL
    s = state(copy_ws)
    assert s["statuses"] == ["applied"] and s["capital"] == ["hamburg"]
    assert s["model_edits"] == ["e1"] and s["model_says"] == "Hamburg"


@pytest.mark.parametrize("stage", ["rollback_kg", "rollback_model"])
def test_crash_during_a_rollback_is_finished_on_restart(copy_ws, stage):
    assert cli(copy_ws, "edit", EDIT, "--yes", "--method", "memit").returncode == 0
    run = cli(copy_ws, "rollback", "1", crash=stage)
    assert run.returncode == -signal.SIGKILL
    s = state(copy_ws)
    assert s["statuses"] == ["rolled_back"]
    assert s["capital"] == ["berlin"] and s["hamburg_capital_of"] == []
    assert s["model_edits"] == [] and s["model_says"] == "Berlin"
    assert s["journal_open"] == []
    with Workspace.open(copy_ws) as w:
        reverts = [r for r in w.kg.store.history(limit=10) if r.message.startswith("rollback of edit #1")]
    assert len(reverts) == 1  # reverted once, not twice
