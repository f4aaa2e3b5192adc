"""What the bench scripts share (run as ``python bench/NAME.py``: this folder is on the path)."""

from __future__ import annotations

import shutil
from pathlib import Path


def workspace(src: str | None, dest: Path) -> Path:
    """A private workspace with its knowledge model at ``dest``: a copy of ``src``, or a fresh one
    over the shipped KG (its model from the cache, or trained once)."""
    if src:
        shutil.copytree(src, dest)
        return dest
    from oneedit.models import train_default
    from oneedit.workspace import Workspace

    ws, _ = Workspace.init(dest)
    with ws:
        train_default(ws)
    return dest


def shipped_texts() -> tuple[list, dict, list[str]]:
    """The shipped KG's entities, its verbalised training sentences (each mapped to the subject
    and object labels it mentions) and every name of an entity (2+ characters, longest first)."""
    import tempfile

    from oneedit.knowledge import kg_facts, verbalizer
    from oneedit.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp) / "ws", progress=None)
        with ws:
            entities = list(ws.kg.store.entities())
            verb = verbalizer(ws.kg.schema)
            sentences = dict.fromkeys((p.sentence, (fact.subject, fact.object))
                                      for fact in kg_facts(ws.kg) for p in verb.prompts(fact, "train"))
    names = sorted({n for e in entities for n in e.names() if len(n) >= 2}, key=len, reverse=True)
    return entities, sentences, names
