"""The model side of a workspace: the default knowledge model, opening editable models, quality.

* ``ensure_default_model(ws)`` trains the knowledge model on the workspace's KG when the workspace
  has none. Trained models are cached by content hash under ``$ONEEDIT_CACHE`` (default
  ``~/.cache/oneedit/models``), so a second workspace over the same KG copies instead of training.
* ``open_model(ws, name)`` gives an :class:`editor.session.EditableModel` with the workspace's
  saved edits re-applied. ``name`` is ``default`` (the knowledge model in ``<ws>/model/base``), a
  hub id or a local directory; each model keeps its own edits under ``<ws>/models/<slug>/``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from oneedit.core import OneEditError
from oneedit.core.slug import slugify

DEFAULT = "default"
GATE = {"train": 0.97, "heldout": 0.85}


def base_dir(ws) -> Path:
    return ws.root / "model" / "base"


def home(ws, name: str) -> Path:
    """Where a model's state lives in the workspace: ``model/`` for the default, ``models/<slug>/``."""
    return ws.root / "model" if name == DEFAULT else ws.root / "models" / slugify(name)


ACTIVE = "active.json"


def active(ws, name: str) -> dict:
    """Which weights and edit folder are live for ``name`` (``{}``: the originals). Written by
    consolidation, which commits a new state by replacing this one small file."""
    f = home(ws, name) / ACTIVE
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}


def state_dir(ws, name: str) -> Path:
    """The live edit folder of model ``name``."""
    return home(ws, name) / active(ws, name).get("edits", "edits")


def folded_edits(ws, name: str) -> set[str]:
    """Model edit ids the live consolidation folded into the weights (gone as edits, not as facts)."""
    f = state_dir(ws, name) / "edits.json"
    if not f.is_file():
        return set()
    record = json.loads(f.read_text(encoding="utf-8")).get("consolidated") or {}
    return set(record.get("folded_edits", []))


def weights_dir(ws) -> Path:
    """The live weights of the default model: the trained base, or its latest consolidation."""
    got = active(ws, DEFAULT).get("weights")
    return home(ws, DEFAULT) / got if got else base_dir(ws)


def model_cache() -> Path:
    from editor.covariance import cache_root

    return cache_root() / "models"


# -- the default knowledge model -------------------------------------------------------------------
def training_facts(ws):
    """What the default model learns: the KG's facts of the relations it learns, and a sample of
    the slots the KG leaves empty, answered "unknown" (:func:`oneedit.knowledge.training_gaps`)."""
    from oneedit.knowledge import kg_facts, training_gaps, verbalizer

    return kg_facts(ws.kg) + training_gaps(ws.kg), verbalizer(ws.kg.schema)


def train_default(ws, *, config=None, force: bool = False, progress: Callable[[dict], None] | None = None,
                  facts=None, use_shipped: bool = True) -> dict:
    """Train (or fetch from the cache) the knowledge model for the workspace's KG; returns its card.

    When the KG is the shipped one (the same content hash: facts, templates and recipe), the
    model shipped with the package is installed instead of trained (:mod:`oneedit.shipped`);
    ``card["cache"]`` says which: ``shipped``, ``hit`` or ``trained``."""
    from editor.knowledge import TrainConfig, content_hash, read_card, train, write_card
    from oneedit.knowledge import kg_info

    default_recipe = config is None
    config = config or TrainConfig()
    if facts is None:
        facts, verb = training_facts(ws)
    else:
        from oneedit.knowledge import verbalizer

        verb = verbalizer(ws.kg.schema)
    key = content_hash(facts, verb, config)
    if default_recipe and use_shipped and not force:
        from oneedit import shipped

        # the shipped KG's model, whichever recipe made it (its card says which)
        key = shipped.for_facts(facts, verb) or key
    cached = model_cache() / key
    card = read_card(cached)
    if (card is None or "quality" not in card) and not force and use_shipped and shipped_matches(key):
        from oneedit import shipped

        tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        card = shipped.install(tmp)
        if cached.exists():
            shutil.rmtree(cached, ignore_errors=True)
        try:
            tmp.rename(cached)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
        card["cache"] = "shipped"
    elif card is None or force or "quality" not in card:
        tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        until, checked = gate_check(facts, verb, config)
        result = train(facts, verb, tmp, config=config, kg_info=kg_info(ws.kg, facts), progress=progress,
                       until=until)
        card = result.card
        if checked and "check" in result.history[-1]:
            card["quality"] = checked[-1]  # measured on the weights that were saved
        else:
            card["quality"] = measure_quality(tmp, facts, verb)
            card["quality"]["passed"] = gate_passed(card["quality"])
        write_card(tmp, card)
        if cached.exists():
            shutil.rmtree(cached, ignore_errors=True)
        try:
            tmp.rename(cached)
        except OSError:  # another process trained the same entry and put it there first
            if read_card(cached) is None:
                raise
            shutil.rmtree(tmp, ignore_errors=True)
        card["cache"] = "trained"
    elif card.get("cache") != "shipped":
        card["cache"] = "hit"
    if card.get("cache") == "shipped":
        from oneedit import shipped

        shipped.install_stats()  # its key statistics too: the first edit computes none
    dest = base_dir(ws)
    # edits and consolidations were made to the previous base model; they do not carry over
    for old in [state_dir(ws, DEFAULT), home(ws, DEFAULT) / "edits", home(ws, DEFAULT) / "consolidated"]:
        shutil.rmtree(old, ignore_errors=True)
    (home(ws, DEFAULT) / ACTIVE).unlink(missing_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(cached, dest)
    (dest / CORPUS_FILE).unlink(missing_ok=True)
    kg_corpus(ws)  # freeze the covariance corpus now, before any edit changes the KG
    write_learned(dest, facts)
    return card


LEARNED_FILE = "facts.jsonl"


#: the gate check during training measures this many facts first, and all of them only when the
#: sample is within PRECHECK_MARGIN of the gate (the full pass is most of a check's time)
PRECHECK_FACTS = 600
PRECHECK_MARGIN = 0.01


def gate_check(facts, verb, config):
    """``(until, checked)`` for :func:`editor.knowledge.train`: ``until`` measures the quality gate
    on the model as it trains (used when ``config.gate_stop``); ``checked`` collects each full
    measurement, the last of which is the saved model's quality when training stopped on it."""
    import random

    checked: list[dict] = []
    sample = random.Random(0).sample(list(facts), min(len(facts), PRECHECK_FACTS))

    def until(model, codec) -> dict:
        if len(sample) < len(facts):  # a seeded sample first: the full pass only when it is near
            est = measure_quality_loaded(model, codec, sample, verb, share=config.phrasing_share)
            if any(est[s]["exact_match"] < GATE[s] - PRECHECK_MARGIN for s in GATE):
                return {"train": est["train"]["exact_match"], "heldout": est["heldout"]["exact_match"],
                        "passed": False, "sampled": len(sample)}
        q = measure_quality_loaded(model, codec, facts, verb, share=config.phrasing_share)
        q["passed"] = gate_passed(q)
        checked.append(q)
        return {"train": q["train"]["exact_match"], "heldout": q["heldout"]["exact_match"], "passed": q["passed"]}
    return until, checked


def shipped_matches(content_hash: str) -> bool:
    """Whether the package ships the model for this content hash (see :mod:`oneedit.shipped`)."""
    from oneedit import shipped

    return shipped.matches(content_hash)


def write_learned(path: Path, facts) -> None:
    """The facts a knowledge model learned (ids and labels), beside its weights: what consolidation
    diffs the KG against to find what changed since."""
    tmp = path / (LEARNED_FILE + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for f in facts:
            fh.write(json.dumps([f.subject_id, f.relation, f.object_id, f.subject, f.object], ensure_ascii=False) + "\n")
    os.replace(tmp, path / LEARNED_FILE)


def read_learned(path: Path) -> list | None:
    from editor.verbalize import Fact

    f = path / LEARNED_FILE
    if not f.is_file():
        return None
    out = []
    for line in f.read_text(encoding="utf-8").splitlines():
        sid, rel, oid, s, o = json.loads(line)
        out.append(Fact(s, rel, o, sid, oid))
    return out


def measure_quality(path, facts, verb, *, device: str = "cpu") -> dict:
    from editor.loading import load

    loaded = load(path, device=device)
    return measure_quality_loaded(loaded.model, loaded.codec(), facts, verb, share=_share(loaded.card))


def _share(card: dict | None) -> float:
    return float(((card or {}).get("train_config") or {}).get("phrasing_share", 0.0))


def measure_quality_loaded(model, codec, facts, verb, *, share: float = 0.0) -> dict:
    """Exact match and teacher-forced token accuracy on training and held-out templates.

    Held-out: the facts' held-out phrasings, for the facts that never taught those phrasings
    (see :func:`editor.knowledge.phrasing_fact`). Exact match is greedy decoding's, computed from
    one teacher-forced pass (all target tokens ranked first ⇔ greedy reproduces the target).
    """
    from editor.knowledge import heldout_prompts
    from editor.probe import teacher_forced

    out = {}
    for split in ("train", "heldout"):
        if split == "train":
            prompts = [p for f in facts for p in verb.prompts(f, "train")]
        else:
            prompts = heldout_prompts(facts, verb, share)
        exact: list[bool] = []
        acc = teacher_forced(model, codec, prompts, all_correct=exact)
        per_rel: dict[str, list[bool]] = {}
        for p, ok in zip(prompts, exact, strict=True):
            per_rel.setdefault(p.relation, []).append(ok)
        out[split] = {"prompts": len(prompts), "exact_match": round(sum(exact) / max(len(exact), 1), 4),
                      "token_accuracy": round(sum(acc) / max(len(acc), 1), 4),
                      "by_relation": {r: round(sum(v) / len(v), 4) for r, v in sorted(per_rel.items())}}
    out["phrasing_share"] = share
    return out


def gate_passed(quality: dict) -> bool:
    return all(quality[s]["exact_match"] >= GATE[s] for s in GATE)


def has_default(ws) -> bool:
    return (base_dir(ws) / "config.json").is_file()


def default_card(ws) -> dict | None:
    from editor.knowledge import read_card

    return read_card(base_dir(ws))


# -- opening models ----------------------------------------------------------------------------------
def read_corpus(paths: Sequence[str | Path]) -> list[str]:
    """Texts from .txt (one text per non-empty line) and .jsonl (a "text" field per line) files."""
    texts: list[str] = []
    for p in paths:
        p = Path(p)
        files = sorted(f for f in p.rglob("*") if f.suffix in {".txt", ".jsonl"}) if p.is_dir() else [p]
        if not files:
            raise OneEditError(f"No .txt or .jsonl files in {p}.", hint="--corpus takes text or JSONL files.")
        for f in files:
            if not f.is_file():
                raise OneEditError(f"Corpus file not found: {f}")
            with f.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    line = line.strip()
                    if not line:
                        continue
                    if f.suffix == ".jsonl":
                        try:
                            obj = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise OneEditError(f"{f}:{n}: not JSON ({exc.msg}).",
                                               hint='Each line of a .jsonl corpus is {"text": "..."}.') from None
                        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                            raise OneEditError(f'{f}:{n}: expected an object with a "text" string.')
                        texts.append(obj["text"])
                    else:
                        texts.append(line)
    return texts


CORPUS_FILE = "corpus.txt"


def kg_corpus(ws) -> list[str]:
    """The default model's covariance corpus: the sentences it was trained on.

    Frozen in ``model/base/corpus.txt`` on first use: the KG changes with every edit, and a corpus
    that followed it would change the statistics' cache key, recomputing them (minutes) per edit.
    """
    frozen = base_dir(ws) / CORPUS_FILE
    if frozen.is_file():
        return frozen.read_text(encoding="utf-8").splitlines()
    facts, verb = training_facts(ws)
    texts = [p.sentence for f in facts for p in verb.prompts(f, "train")]
    if base_dir(ws).is_dir():
        tmp = frozen.with_suffix(".tmp")
        tmp.write_text("\n".join(t.replace("\n", " ") for t in texts), encoding="utf-8")
        os.replace(tmp, frozen)
    return texts


def open_model(ws, name: str | None = None, *, device: str | None = None, dtype: str | None = None,
               corpus: Sequence[str | Path] | None = None, cov_samples: int | None = None,
               progress: Callable[[str], None] | None = None, device_map: str | None = None,
               max_memory: str | dict | None = None):
    """An editable model with the workspace's saved edits for it re-applied. ``device_map`` (and
    ``max_memory``) spread a large model over devices with accelerate (see :func:`editor.loading.load`)."""
    from editor import hparams as hp_mod
    from editor.loading import load
    from editor.session import EditableModel

    cfg = ws.config.model
    name = name or cfg.name
    device = device or cfg.device
    dtype = dtype or cfg.dtype
    step = progress or (lambda msg: None)
    if name == DEFAULT:
        if not has_default(ws):
            raise OneEditError("This workspace has no knowledge model yet.",
                               hint="Train it with `oneedit model train` (a few minutes on a laptop).")
        path = str(weights_dir(ws))
    else:
        path = name
    step(f"Loading model {name}")
    started = time.perf_counter()
    device_map = device_map or cfg.device_map or None
    loaded = load(path, device=device, dtype=dtype, device_map=device_map,
                  max_memory=max_memory or cfg.max_memory or None)
    loaded.name = name
    corpus = corpus if corpus is not None else (cfg.corpus or None)
    if corpus:
        source = (lambda: read_corpus(corpus))
    elif loaded.is_knowledge_model:
        source = (lambda: kg_corpus(ws))
    else:
        source = ()
    hp = hp_mod.load(loaded.hparams_name)
    if cov_samples or cfg.cov_samples:
        hp = hp_mod.Hparams(hp.name, hp.memit.replace(cov_samples=cov_samples or cfg.cov_samples), hp.grace, hp.notes)
    step("Re-applying saved edits")
    em = EditableModel(loaded, state_dir(ws, name), corpus=source, hparams=hp)
    em.open_seconds = time.perf_counter() - started
    return em


# -- using models ------------------------------------------------------------------------------------
def generate(em, prompt: str, max_tokens: int = 12) -> str:
    """Greedy continuation, stopping at the end-of-text token."""
    import torch

    if not prompt.strip():
        raise OneEditError("The prompt is empty.", hint='Give text to continue, e.g. "The capital of France is".')
    tok = em.codec.tokenizer
    ids = torch.tensor([em.codec.ids(prompt)], device=em.loaded.device)
    with torch.inference_mode():
        out = em.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                max_new_tokens=max_tokens, pad_token_id=em.codec.pad_id,
                                eos_token_id=tok.eos_token_id)
    return tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def fact_requests(ws, triples, *, split: str = "train"):
    """MEMIT/GRACE requests for KG triples: every prompt template of the relation, labels from the KG."""
    from editor.memit import Request
    from oneedit.knowledge import Labeller, verbalizer

    verb = verbalizer(ws.kg.schema)
    label = Labeller(ws.kg)
    out = []
    for t in triples:
        f = label.fact(t)
        prompts = verb.prompts(f, split)
        if not prompts:
            raise OneEditError(f"Relation {t.relation!r} has no {split} template ending in {{object}}.",
                               hint="Add one to the schema's templates to edit this relation in the model.")
        out.append(Request.of(prompts))
    return out


def next_edit_id(em, prefix: str = "m") -> str:
    taken = set(em.edit_ids())
    n = len(taken) + 1
    while f"{prefix}{n}" in taken:
        n += 1
    return f"{prefix}{n}"


def edit_fact(ws, em, subject: str, relation: str, obj: str, *, method: str = "memit",
              edit_id: str | None = None) -> dict:
    """Write (subject, relation, obj) into the model only; before/after on each training prompt."""
    from editor.memit import Request
    from editor.probe import greedy
    from editor.verbalize import Fact

    kg = ws.kg
    s = kg.resolve_entity(subject)
    rel = kg.resolve_relation(relation)
    try:
        o = kg.resolve_entity(obj)
        o_id, o_label = o.id, o.label
    except OneEditError:
        o_id, o_label = "", obj.strip()
    if not o_label:
        raise OneEditError("The new object is empty.")
    from oneedit.knowledge import verbalizer

    prompts = verbalizer(kg.schema).prompts(Fact(s.label, rel.id, o_label, s.id, o_id), "train")
    if not prompts:
        raise OneEditError(f"Relation {rel.id!r} has no training template that ends with the object.")
    req = Request.of(prompts)
    edit_id = edit_id or next_edit_id(em)
    _, before = greedy(em.model, em.codec, prompts)
    started = time.perf_counter()
    em.edit(edit_id, [req], method)
    seconds = time.perf_counter() - started
    ok, after = greedy(em.model, em.codec, prompts)
    return {"edit": edit_id, "method": method, "seconds": round(seconds, 3),
            "fact": {"subject": s.id, "relation": rel.id, "object": o_id or o_label},
            "prompts": [{"prompt": p.text, "target": p.target.strip(), "before": b.strip(), "after": a.strip(),
                         "ok": k} for p, b, a, k in zip(prompts, before, after, ok, strict=True)],
            "holds": all(ok)}


# -- exporting ---------------------------------------------------------------------------------------
def _grace_refusal(name: str, grace: list[str]) -> OneEditError:
    n = len(grace)
    if name == DEFAULT:
        how = ("`oneedit model consolidate` retrains the knowledge model on the KG as it is now and starts an "
               "empty edit folder: a GRACE edit whose fact is in the KG (made with `oneedit edit`) ends up in "
               "the weights, one made with `oneedit model edit` (model only) is dropped. ")
    else:
        how = ("`oneedit model consolidate` does not fold GRACE edits for this model (it rewrites the MEMIT edits "
               "and keeps GRACE's codebook). ")
    return OneEditError(
        f"The model holds {n} GRACE edit{'s' if n != 1 else ''} ({', '.join(grace)}); GRACE keeps edits in a side "
        "memory, which plain weights cannot hold, so they cannot be exported.",
        hint=how + "To keep them, undo each (`oneedit model undo ID`) and write its fact again with MEMIT "
                   "(`oneedit model edit S R O --method memit`); or pass --skip-grace to export without them.",
        details={"grace_edits": grace})


def check_export(ws, name: str, path: str | Path, *, dtype: str | None = None, force: bool = False,
                 skip_grace: bool = False) -> None:
    """What :func:`export_model` would refuse, found from the saved edits before the model is
    loaded (minutes, for a large one): an unknown dtype, GRACE edits, a non-empty target, a target
    holding the workspace or the model's own files."""
    from editor.export import check_target
    from editor.loading import resolve_dtype

    if dtype is not None:
        resolve_dtype(dtype)
    f = state_dir(ws, name) / "edits.json"
    try:
        edits = json.loads(f.read_text(encoding="utf-8")).get("edits", []) if f.is_file() else []
    except (ValueError, UnicodeDecodeError, AttributeError):
        edits = []  # opening the model says what is wrong with the manifest
    grace = [e["id"] for e in edits if e.get("method") == "grace"]
    if grace and not skip_grace:
        raise _grace_refusal(name, grace)
    check_target(Path(path).expanduser().resolve(), force=force, protected=[ws.root, home(ws, name)])


def export_model(ws, em, path: str | Path, *, dtype: str | None = None, force: bool = False,
                 skip_grace: bool = False, progress: Callable[[str], None] | None = None) -> dict:
    """Write the workspace's open model ``em`` with its MEMIT edits merged as a plain Hugging Face
    directory (:func:`editor.export.export`), with the KG revision in its provenance. A model with
    GRACE edits is refused (they cannot be merged) unless ``skip_grace``."""
    from editor.export import export, grace_edits

    grace = grace_edits(em)
    if grace and not skip_grace:
        raise _grace_refusal(em.loaded.name, grace)
    extra = {"workspace": str(ws.root), "kg_revision": ws.kg.store.head()}
    return export(em, path, dtype=dtype, force=force, skip_grace=skip_grace, extra=extra,
                  protected=[ws.root, home(ws, em.loaded.name)], progress=progress)
