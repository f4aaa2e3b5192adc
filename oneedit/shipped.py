"""The default knowledge model for the shipped KG, shipped with the package (``kg_data/model/``).

Training the knowledge model on the shipped world KG takes minutes on a 2-core machine, so the
package carries the result: the weights in float16 safetensors (half the size; the quality gate is
measured on these rounded weights, so they pass it as shipped), the tokenizer and the model card
(the content hash of what it learned — facts, templates and recipe —, the recipe, the measured
quality). :func:`oneedit.models.train_default` installs it instead of training when a workspace's
KG has exactly that content hash (checked, never assumed), converting the weights back to float32
so every machine edits the same model. A KG that differs — a user's own data, or an edited
``kg_data`` — has another hash and is trained as before.

When ``kg_data`` changes (facts, templates) or the recipe does, refresh the shipped model with::

    python -m oneedit.shipped build        # trains (or takes it from the cache), checks the gate,
                                           # and computes the key statistics it ships with
    python -m oneedit.shipped verify       # retrains from scratch and compares with the shipped weights

``tests/test_shipped_model.py`` fails while the shipped model's hash is not the shipped KG's.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from oneedit.core import OneEditError

#: The files of a knowledge model directory that ship (``facts.jsonl`` is rebuilt from the KG).
FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors")
WEIGHTS = "model.safetensors"
#: MEMIT's key statistics of the shipped model on the shipped KG's corpus: each layer's second
#: moment as the upper triangle of the symmetric matrix, float32 (a quarter of the float64 cache
#: entry); restored into the statistics cache, so the first edit computes nothing.
STATS = "stats.safetensors"


def home() -> Path:
    import kg_data

    return kg_data.path() / "model"


def card() -> dict | None:
    """The shipped model's card, or ``None`` when the package has no shipped model."""
    from editor.knowledge import read_card

    return read_card(home()) if (home() / WEIGHTS).is_file() else None


def matches(content_hash: str) -> bool:
    c = card()
    return c is not None and c.get("content_hash") == content_hash


def recipe():
    """The :class:`editor.knowledge.TrainConfig` the shipped model was trained with (its card's)."""
    from editor.knowledge import TrainConfig

    c = card()
    return None if c is None else TrainConfig.from_key(c["train_config"])


def for_facts(facts, verb) -> str | None:
    """The shipped model's content hash when ``facts`` and ``verb`` are what it learned (hashed
    with the recipe it was trained with, which may be older than today's default), else None."""
    from editor.knowledge import content_hash

    c, config = card(), recipe()
    if c is None or config is None:
        return None
    return c["content_hash"] if content_hash(facts, verb, config) == c["content_hash"] else None


def install(dest: Path) -> dict:
    """Copy the shipped model into ``dest`` (a new folder) with float32 weights; returns its card."""
    from editor.knowledge import read_card, write_card

    src = home()
    shipped = read_card(src)
    if shipped is None:
        raise OneEditError(f"No shipped knowledge model in {src}.", hint="Train one: oneedit model train")
    dest.mkdir(parents=True)
    for name in FILES:
        if name != WEIGHTS:
            shutil.copy2(src / name, dest / name)
    _convert(src / WEIGHTS, dest / WEIGHTS, "float32")
    _set_dtype(dest / "config.json", "float32")
    out = {**shipped, "cache": "shipped"}
    write_card(dest, out)
    return out


def install_stats() -> int:
    """Put the shipped key statistics into the statistics cache (the entries missing there);
    returns how many were written."""
    import torch
    from safetensors import safe_open

    from editor.covariance import cache_root

    f = home() / STATS
    if not f.is_file():
        return 0
    written = 0
    with safe_open(str(f), framework="pt") as fh:
        meta = fh.metadata()
        folder = cache_root() / "stats" / meta["fingerprint"]
        for layer, name in json.loads(meta["files"]).items():
            target = folder / name
            if target.is_file():
                continue
            folder.mkdir(parents=True, exist_ok=True)
            full = _unpack(fh.get_tensor(f"layer{layer}"), int(meta["dim"]))
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            torch.save(full, tmp)
            os.replace(tmp, target)
            written += 1
        (folder / "model.json").write_text(json.dumps({"fingerprint": meta["fingerprint"]}))
    return written


def _pack(full):
    import torch

    iu = torch.triu_indices(full.shape[0], full.shape[1])
    return full[iu[0], iu[1]].to(torch.float32).contiguous()


def _unpack(packed, dim: int):
    import torch

    iu = torch.triu_indices(dim, dim)
    full = torch.zeros(dim, dim, dtype=torch.float64)
    full[iu[0], iu[1]] = packed.to(torch.float64)
    return full + full.T - torch.diag(torch.diagonal(full))


def build_stats(out: Path | None = None) -> dict:
    """Compute the key statistics of the shipped model (installed as a user gets it) on the
    shipped KG's corpus and write them beside it."""
    import torch
    from safetensors.torch import save_file

    from editor.covariance import cache_root
    from oneedit.models import open_model, train_default
    from oneedit.workspace import Workspace

    out = out or home()
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp) / "ws")
        with ws:
            card = train_default(ws)
            if card.get("cache") != "shipped":
                raise OneEditError("The shipped model does not match the shipped KG; build it first.")
            em = open_model(ws)
            layers = list(em.hp.memit.layers)
            moments = em.key_statistics(layers)
            fingerprint = em.loaded.fingerprint
    folder = cache_root() / "stats" / fingerprint
    files = {}
    for layer in layers:
        [name] = [p.name for p in folder.glob(f"layer{layer}-*.pt")]
        files[str(layer)] = name
    dim = int(next(iter(moments.values())).shape[0])
    tensors = {f"layer{layer}": _pack(moments[layer]) for layer in layers}
    save_file(tensors, str(out / STATS), metadata={"fingerprint": fingerprint, "files": json.dumps(files),
                                                   "dim": str(dim), "dtype": str(torch.float32)})
    return {"fingerprint": fingerprint, "layers": layers, "files": files}


def _convert(src: Path, dest: Path, dtype: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    dt = getattr(torch, dtype)
    tensors = {k: v.to(dt).contiguous() for k, v in load_file(str(src)).items()}
    save_file(tensors, str(dest), metadata={"format": "pt"})


def _set_dtype(config: Path, dtype: str) -> None:
    cfg = json.loads(config.read_text(encoding="utf-8"))
    for key in ("torch_dtype", "dtype"):
        if key in cfg:
            cfg[key] = dtype
    config.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")


def build(out: Path | None = None, *, progress=None) -> dict:
    """Train (or take from the cache) the default model of the shipped KG, round its weights to
    float16, measure the gate on the rounded weights and write the shipped model to ``out``."""
    from editor.knowledge import read_card, write_card
    from oneedit.models import gate_passed, measure_quality, model_cache, train_default, training_facts
    from oneedit.workspace import Workspace

    out = out or home()
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp) / "ws")
        with ws:
            facts, verb = training_facts(ws)
            trained = train_default(ws, progress=progress, facts=facts, use_shipped=False)
            src = model_cache() / trained["content_hash"]
            half = Path(tmp) / "half"
            half.mkdir()
            for name in FILES:
                if name != WEIGHTS:
                    shutil.copy2(src / name, half / name)
            _convert(src / WEIGHTS, half / WEIGHTS, "float16")
            # the gate, on the weights as a user gets them (float16 rounded, back to float32)
            check = Path(tmp) / "check"
            write_card(half, read_card(src) or {})
            _install_from(half, check)
            quality = measure_quality(check, facts, verb)
            quality["passed"] = gate_passed(quality)
            if not quality["passed"]:
                raise OneEditError("The float16 weights do not pass the quality gate; not shipped.",
                                   details={"quality": quality})
            shipped = {**(read_card(src) or {}), "dtype": "float16", "quality": quality,
                       "quality_float32": trained.get("quality")}
            shipped.pop("cache", None)
            write_card(half, shipped)
            if out.exists():
                shutil.rmtree(out)
            shutil.copytree(half, out)
    return shipped


def _install_from(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    for name in FILES:
        if name != WEIGHTS:
            shutil.copy2(src / name, dest / name)
    _convert(src / WEIGHTS, dest / WEIGHTS, "float32")
    shutil.copy2(src / "oneedit.json", dest / "oneedit.json")


def verify(*, progress=None) -> dict:
    """Retrain the default model of the shipped KG from scratch and compare it with the shipped
    one: the float16 weights bit for bit, and the answer to every training and held-out prompt."""
    import torch
    from safetensors.torch import load_file

    from editor.knowledge import TrainConfig, content_hash, heldout_prompts, train
    from editor.loading import load
    from editor.probe import teacher_forced
    from oneedit.models import _share, gate_check, training_facts
    from oneedit.workspace import Workspace

    shipped = card()
    if shipped is None:
        raise OneEditError("This package ships no knowledge model.", hint="python -m oneedit.shipped build")
    with tempfile.TemporaryDirectory() as tmp:
        ws, _ = Workspace.init(Path(tmp) / "ws")
        with ws:
            facts, verb = training_facts(ws)
            config = TrainConfig.from_key(shipped["train_config"])
            key = content_hash(facts, verb, config)
            if key != shipped["content_hash"]:
                return {"same_kg": False, "content_hash": key, "shipped": shipped["content_hash"]}
            fresh = Path(tmp) / "fresh"
            until, _ = gate_check(facts, verb, config)  # the same stop as the shipped model's
            train(facts, verb, fresh, config=config, progress=progress, until=until)
            a = load_file(str(home() / WEIGHTS))
            b = {k: v.to(torch.float16) for k, v in load_file(str(fresh / WEIGHTS)).items()}
            identical = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            share = _share(shipped)
            answers = {}
            for name, path in (("shipped", home()), ("fresh", fresh)):
                loaded = load(path)
                codec = loaded.codec()
                per = {}
                for split in ("train", "heldout"):
                    prompts = ([p for f in facts for p in verb.prompts(f, "train")] if split == "train"
                               else heldout_prompts(facts, verb, share))
                    exact: list[bool] = []
                    teacher_forced(loaded.model, codec, prompts, all_correct=exact)
                    per[split] = exact
                answers[name] = per
            differ = {s: sum(x != y for x, y in zip(answers["shipped"][s], answers["fresh"][s], strict=True))
                      for s in ("train", "heldout")}
            total = {s: len(answers["shipped"][s]) for s in ("train", "heldout")}
    return {"same_kg": True, "content_hash": key, "bit_identical": identical,
            "prompts": total, "answers_differ": differ,
            "within_tolerance": all(differ[s] <= TOLERANCE * total[s] for s in differ)}


#: A retrained model may answer at most this share of prompts differently from the shipped one
#: (float reductions differ between CPUs; the recipe is the same).
TOLERANCE = 0.01


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["build"]:
        c = build()
        stats = build_stats()
        print(json.dumps({"content_hash": c["content_hash"], "quality": c["quality"], "stats": stats}, indent=2))
        return 0
    if args[:1] == ["verify"]:
        print(json.dumps(verify(), indent=2))
        return 0
    print("usage: python -m oneedit.shipped build|verify", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
