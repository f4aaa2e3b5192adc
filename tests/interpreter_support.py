"""Shared by the interpreter tests: one workspace over the shipped KG per test session.

``Workspace.init`` is safe to run twice (the second call opens what the first made), so every
test module opens the same directory under the session's temporary root, and the shipped KG is
loaded once per session. No model is trained: the interpreter needs only the KG.
"""

from __future__ import annotations

from pathlib import Path

from oneedit.workspace import Workspace


def shipped_workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.getbasetemp() / "interpreter-shipped-ws"
    ws, _created = Workspace.init(root)
    ws.close()
    return root


def kg_state(ws) -> tuple:
    """What must not change when a request is only parsed: KG revision, triple count, ledger."""
    st = ws.kg.store
    return st.head(), st.count(), ws.ledger.count()

