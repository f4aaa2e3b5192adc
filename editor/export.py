"""An edited model as a plain Hugging Face directory: the MEMIT edits merged into its weights.

``export(em, path)`` writes what ``AutoModelForCausalLM.from_pretrained(path)`` and
``AutoTokenizer.from_pretrained(path)`` load with no OneEdit code (so vLLM or TGI can serve it):

* ``config.json``, ``generation_config.json``, ``model.safetensors`` (sharded when large): every
  weight as the live model holds it, except the projections MEMIT edited, which are written from
  their fp32 masters (:class:`editor.weights.MasterWeights`) — the full-precision merged value —
  and everything cast once to the export dtype (``config.json`` says that dtype, so
  ``from_pretrained`` loads it as written);
* the tokenizer files;
* ``oneedit-export.json`` (:data:`PROVENANCE`): the source model and its fingerprint, the edits
  merged (ids, methods, facts), the GRACE edits left out, the dtype, OneEdit's version; and a
  ``README.md`` whose "OneEdit edits" section says what was edited (appended to the source model's
  own card when it has one);
* the default knowledge model's card (``oneedit.json``), unchanged, so OneEdit can open the export
  as a knowledge model (its answers end with the end-of-text token).

GRACE edits live in a side memory (a codebook hooked into one layer), not in the weights: an export
of a model that holds any is refused unless ``skip_grace`` says to leave them out.

The directory is written under a temporary sibling and renamed into place, so an error (or a crash)
never leaves a half-written ``path``; an existing non-empty ``path`` is replaced only with
``force``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch

from oneedit.core import OneEditError

log = logging.getLogger(__name__)

PROVENANCE = "oneedit-export.json"
FORMAT = 1
_TMP, _OLD = ".oneedit-tmp-", ".oneedit-old-"


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("oneedit")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def grace_edits(em) -> list[str]:
    """The edits ``em`` holds in GRACE's codebook (manifest order; ids of entries a crash left
    without a manifest entry too)."""
    ids = [m["id"] for m in em.manifest if m["method"] == "grace"]
    for sub in em.grace.codebook.edit_ids():
        owner = sub.split("#", 1)[0]
        if owner not in ids:
            ids.append(owner)
    return ids


def _facts(entry: dict) -> list[dict]:
    out = []
    for r in entry.get("requests", []):
        first = r["prompts"][0] if r["prompts"] else {}
        out.append({"subject": r.get("subject", ""), "relation": first.get("relation", ""),
                    "prompt": first.get("text", ""), "target": r["target"].strip()})
    return out


def _edit_record(entry: dict) -> dict:
    return {"id": entry["id"], "method": entry["method"], "created": entry.get("created"), "facts": _facts(entry)}


def merged_state_dict(em, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's state dict with every MEMIT-edited projection taken from its fp32 master, cast
    to ``dtype``. Tensors the model ties (GPT-2's embedding and LM head) stay one tensor, so
    ``save_pretrained`` still sees the tie; a tensor already in ``dtype`` is not copied; one a device
    map offloads is read from where it is kept (CPU memory or disk)."""
    masters = em.weights.by_name()
    cast: dict[tuple, torch.Tensor] = {}
    out: dict[str, torch.Tensor] = {}
    for name, t in em.model.state_dict().items():
        src = masters.get(name, t).detach()
        if src.device.type == "meta":  # offloaded by a device map: the value its weights map holds
            from editor.placement import stored_value

            owner, _, attr = name.rpartition(".")
            src = stored_value(em.model.get_submodule(owner), attr).detach()
        if not src.is_floating_point():
            out[name] = src
            continue
        key = (src.device, src.untyped_storage().data_ptr(), src.storage_offset(), tuple(src.shape), src.stride())
        if key not in cast:
            cast[key] = src.to(dtype)
        out[name] = cast[key]
    return out


def _inside(path: Path, other: Path | None) -> bool:
    """Whether replacing ``path`` would delete ``other`` (it is ``path`` or lies under it)."""
    if other is None:
        return False
    other = Path(other).expanduser().resolve()
    return other == path or path in other.parents


def check_target(path: Path, *, force: bool, protected: Sequence[Path | None] = ()) -> None:
    """Refuse a target the export may not write: one holding a ``protected`` path, a file, or a
    non-empty directory without ``force``."""
    for p in protected:
        if _inside(path, p):
            raise OneEditError(f"Refusing to export into {path}: it holds {Path(p).resolve()}, which the "
                               "export reads from.", hint="Choose a new directory for the exported model.",
                               details={"path": str(path)})
    if path.exists() and not path.is_dir():
        raise OneEditError(f"{path} exists and is not a directory.", hint="Choose a directory path to export to.",
                           details={"path": str(path)})
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OneEditError(f"{path} exists and is not empty; nothing was written.",
                           hint="Choose a new directory, or pass --force to replace this one (all of its "
                                "contents) with the export.", details={"path": str(path)})


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep(path: Path) -> None:
    """Remove the temporary siblings of ``path`` an export that crashed left behind."""
    for p in path.parent.glob(f".{path.name}.oneedit-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


def _swap_in(tmp: Path, path: Path) -> None:
    """Put the finished ``tmp`` at ``path``; a previous ``path`` goes only once ``tmp`` is there."""
    if not path.exists():
        os.replace(tmp, path)
        return
    old = path.with_name(f".{path.name}{_OLD}{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _readme(em, prov: dict, source_card: str | None) -> str:
    merged, skipped = prov["merged"], prov["grace_skipped"]
    src = prov["source"]
    lines = [] if source_card else [f"# {Path(src['model']).name} (edited with OneEdit)", ""]
    lines += ["## OneEdit edits", "",
              f"This is `{src['model']}` (weights fingerprint `{src['fingerprint']}`) with "
              f"{len(merged)} MEMIT edit{'s' if len(merged) != 1 else ''} merged into its weights by OneEdit "
              f"{prov['oneedit_version']} on {prov['created'][:10]}, saved as {prov['dtype']}. It loads with plain "
              "`transformers` (`AutoModelForCausalLM.from_pretrained`); no OneEdit code is needed.", ""]
    if prov.get("consolidated"):
        folded = prov["consolidated"].get("folded_edits") or []
        lines += [f"The source weights are a consolidation that already folded {len(folded)} earlier edits.", ""]
    if merged:
        lines += ["| edit | method | fact | new answer |", "|---|---|---|---|"]
        for e in merged:
            for f in e["facts"]:
                lines.append(f"| {e['id']} | {e['method']} | {_cell(f['prompt'])} … | {_cell(f['target'])} |")
        lines.append("")
    if skipped:
        lines += [f"Not included: {len(skipped)} GRACE edit{'s' if len(skipped) != 1 else ''} "
                  f"({', '.join(e['id'] for e in skipped)}). GRACE keeps its edits in a side memory that plain "
                  "weights cannot hold, so this model answers those prompts as the unedited model does.", ""]
    lines += [f"Provenance (every edit with its prompts, the source model, the KG revision): `{PROVENANCE}`.", ""]
    section = "\n".join(lines)
    return f"{source_card.rstrip()}\n\n{section}" if source_card else section


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _source_readme(em) -> str | None:
    p = em.loaded.path
    f = Path(p) / "README.md" if p else None
    return f.read_text(encoding="utf-8") if f and f.is_file() else None


def export(em, path: str | Path, *, dtype: str | torch.dtype | None = None, force: bool = False,
           skip_grace: bool = False, extra: dict | None = None, protected: Sequence[Path] = (),
           progress: Callable[[str], None] | None = None, max_shard_size: str = "5GB") -> dict:
    """Write ``em`` (an :class:`editor.session.EditableModel`) with its MEMIT edits merged as a plain
    Hugging Face directory at ``path``; returns a summary (what the provenance file holds, plus the
    directory's size). ``dtype``: the weights' dtype (default: the model's own). ``extra``: more
    provenance (the KG revision, …). ``protected``: paths the export must never replace."""
    from transformers.utils import logging as hf_logging

    from editor.knowledge import write_card
    from editor.loading import resolve_dtype

    started = time.perf_counter()
    step = progress or (lambda msg: None)
    dt = resolve_dtype(dtype) if dtype is not None else em.loaded.dtype
    if not dt.is_floating_point:
        raise OneEditError(f"Cannot export weights as {dtype_name(dt)}.", hint="Use fp32, bf16 or fp16.")
    grace = grace_edits(em)
    if grace and not skip_grace:
        raise OneEditError(
            f"The model holds {len(grace)} GRACE edit{'s' if len(grace) != 1 else ''} ({', '.join(grace)}); "
            "GRACE keeps edits in a side memory, which plain weights cannot hold.",
            hint="Undo them and write their facts again with MEMIT, or export without them (skip_grace=True, "
                 "--skip-grace).", details={"grace_edits": grace})
    path = Path(path).expanduser().resolve()
    check_target(path, force=force, protected=[em.loaded.path, em.state_dir, *protected])
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep(path)
    tmp = path.with_name(f".{path.name}{_TMP}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)

    by_id = {m["id"]: m for m in em.manifest}
    prov = {
        "format": FORMAT, "oneedit_version": _version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {"model": em.loaded.name, "path": str(em.loaded.path) if em.loaded.path else None,
                   "fingerprint": em.loaded.fingerprint, "architecture": em.loaded.model_type,
                   "dtype": dtype_name(em.loaded.dtype),
                   **({"content_hash": em.loaded.card.get("content_hash")} if em.loaded.card else {})},
        "dtype": dtype_name(dt),
        **(extra or {}),
        "consolidated": em.consolidated,
        "merged": [_edit_record(m) for m in em.manifest if m["method"] == "memit"],
        "grace_skipped": [_edit_record(by_id.get(g, {"id": g, "method": "grace"})) for g in grace],
    }
    hf_logging.disable_progress_bar()  # no tqdm bars on stdout/stderr while the shards are written
    cfg = em.model.config
    kept = {k: getattr(cfg, k, None) for k in ("dtype", "architectures")}
    try:
        tmp.mkdir(parents=True)
        step(f"Merging {len(prov['merged'])} MEMIT edits into {dtype_name(dt)} weights")
        state = merged_state_dict(em, dt)
        step(f"Writing {dtype_name(dt)} weights")
        try:
            em.model.save_pretrained(tmp, state_dict=state, max_shard_size=max_shard_size)
            out_cfg = copy.deepcopy(cfg)  # save_pretrained wrote the live dtype; the file says the export's
        finally:
            for k, v in kept.items():
                setattr(cfg, k, v)
        del state
        out_cfg.dtype = dtype_name(dt)
        out_cfg.save_pretrained(tmp)
        step("Writing the tokenizer")
        em.loaded.tokenizer.save_pretrained(tmp)
        if em.loaded.card:
            write_card(tmp, em.loaded.card)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        prov["files"] = [str(p.relative_to(tmp)) for p in files] + [PROVENANCE, "README.md"]
        (tmp / "README.md").write_text(_readme(em, prov, _source_readme(em)), encoding="utf-8")
        (tmp / PROVENANCE).write_text(json.dumps(prov, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        step(f"Moving the export into {path}")
        _swap_in(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    log.info("exported %s to %s (%s, %d bytes)", em.loaded.name, path, dtype_name(dt), size)
    return {"path": str(path), "bytes": size, "seconds": round(time.perf_counter() - started, 2), **prov}
