"""``oneedit model ...``: the language model side — train, check, ask, edit, undo, list edits."""

from __future__ import annotations

import functools
import inspect
import typing
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from oneedit.cli.options import JsonOpt, WorkspaceOpt
from oneedit.cli.output import Steps, console, handle_errors, print_json

model_app = typer.Typer(help="The language model: train the default, check it, ask it, edit it, undo edits.",
                        no_args_is_help=True)

ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="A Hugging Face hub id or a local model directory (default: the workspace's "
                          "model, normally its own knowledge model).")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu or cuda (default: the workspace config).")]
DtypeOpt = Annotated[Optional[str], typer.Option("--dtype", help="fp32, bf16 or fp16 (default: the workspace config).")]
CorpusOpt = Annotated[Optional[list[Path]], typer.Option(
    "--corpus", help="Text (.txt, one text per line) or JSONL ({\"text\": ...}) files for MEMIT's key "
                     "statistics; needed for real models, the default model uses its KG.")]
SamplesOpt = Annotated[Optional[int], typer.Option(
    "--cov-samples", help="Texts read for the key statistics (a seeded sample of a larger corpus; default: the "
                          "model's hyperparameter file, 10,000 for real models).")]
DeviceMapOpt = Annotated[Optional[str], typer.Option(
    "--device-map", help="Spread a model bigger than one device over the GPUs, CPU memory and disk (accelerate: "
                         "pip install 'oneedit[big]'): auto, balanced, sequential, or a .json file mapping module "
                         "names to devices. Replaces --device.")]
MaxMemoryOpt = Annotated[Optional[str], typer.Option(
    "--max-memory", help="With --device-map: memory each device may take, e.g. 0=70GiB,1=70GiB,cpu=120GiB.")]
MethodOpt = Annotated[str, typer.Option("--method", help="memit (weights, batched) or grace (codebook, lifelong).")]


def _ws(workspace):
    from oneedit.workspace import Workspace

    return Workspace.open(workspace)


def open_model(ws, model, device, dtype, corpus=None, cov_samples=None, step=None, *, device_map=None,
               max_memory=None):
    from oneedit.models import open_model as _open

    return _open(ws, model, device=device, dtype=dtype, corpus=corpus, cov_samples=cov_samples, progress=step,
                 device_map=device_map, max_memory=max_memory)


class StatsBar:
    """A rich progress bar over the tokens MEMIT's key statistics read, with the time left (nothing
    in --json mode). The spinner pauses while it shows: one live display at a time."""

    def __init__(self, steps: Steps, enabled: bool):
        self.steps, self.enabled = steps, enabled
        self.progress = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            from rich.progress import (BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self.steps.pause()
            self.progress = Progress(TextColumn("[bold]Key statistics"), BarColumn(), TaskProgressColumn(),
                                     TextColumn("{task.completed:,}/{task.total:,} tokens"), TimeElapsedColumn(),
                                     TextColumn("left"), TimeRemainingColumn(), console=console())
            self.progress.__enter__()
            self.task = self.progress.add_task("statistics", total=total)
        self.progress.update(self.task, completed=done, total=total)
        if done >= total:
            self.progress.__exit__(None, None, None)
            self.progress = None
            self.steps.resume()


@contextmanager
def opened(workspace, as_json: bool, model=None, device=None, dtype=None, corpus=None, cov_samples=None,
           device_map=None, max_memory=None):
    """The workspace and its editable model, under a spinner (none with --json): ``(ws, em, step)``;
    key statistics computed meanwhile show a progress bar."""
    with _ws(workspace) as ws, Steps(not as_json) as step:
        em = open_model(ws, model, device, dtype, corpus, cov_samples, step=step, device_map=device_map,
                        max_memory=max_memory)
        em.stats_progress = StatsBar(step, not as_json)
        yield ws, em, step


@dataclass(frozen=True)
class ModelChoice:
    """The options every model command shares: which workspace and model, where, how to print."""

    workspace: Optional[Path] = None
    model: Optional[str] = None
    device: Optional[str] = None
    dtype: Optional[str] = None
    corpus: Optional[list[Path]] = None
    cov_samples: Optional[int] = None
    as_json: bool = False
    device_map: Optional[str] = None
    max_memory: Optional[str] = None

    def opened(self):
        return opened(self.workspace, self.as_json, self.model, self.device, self.dtype, self.corpus,
                      self.cov_samples, self.device_map, self.max_memory)


_SHARED = {"workspace": WorkspaceOpt, "model": ModelOpt, "device": DeviceOpt, "dtype": DtypeOpt,
           "device_map": DeviceMapOpt, "max_memory": MaxMemoryOpt,
           "corpus": CorpusOpt, "cov_samples": SamplesOpt, "as_json": JsonOpt}


def model_options(*, corpus: bool = False):
    """Give a command the shared model options (``--corpus``/``--cov-samples`` too with
    ``corpus=True``); the command takes them as one ``m: ModelChoice`` argument.

    Typer reads options from the signature, so the wrapper's signature is the command's own
    parameters followed by the shared ones. A parameter of the command's own with a shared name
    (``model export --dtype``) replaces that shared option (its ``ModelChoice`` field stays None).
    """
    wanted = [n for n in _SHARED if corpus or n not in ("corpus", "cov_samples")]

    def decorate(fn):
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [p.replace(annotation=hints[p.name]) for p in inspect.signature(fn).parameters.values()
               if p.name != "m"]
        names = [n for n in wanted if n not in {p.name for p in own}]
        shared = [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=_SHARED[n],
                                    default=False if n == "as_json" else None) for n in names]

        @functools.wraps(fn)
        def wrapper(**kwargs):
            m = ModelChoice(**{n: kwargs.pop(n) for n in names if n in kwargs})
            return fn(m=m, **kwargs)

        wrapper.__signature__ = inspect.Signature(own + shared, return_annotation=None)
        wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
        return wrapper

    return decorate


class EpochBar:
    """A rich progress bar over training epochs (nothing in --json mode)."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total
        self.progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("[bold]Training"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("epochs · recall {task.fields[recall]:.1%} · loss {task.fields[loss]:.3f}"),
                                     TimeElapsedColumn(), console=console(), transient=False)
            self.progress.__enter__()
            self.task = self.progress.add_task("train", total=self.total, recall=0.0, loss=0.0)
        return self

    def __call__(self, row: dict) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=row["epoch"], recall=row["recall"], loss=row["loss"],
                                 total=row.get("max_epochs", self.total))

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)


def quality_table(quality: dict, title: str):
    from rich.table import Table

    from oneedit.models import GATE

    t = Table(title=title, title_justify="left")
    for col in ("templates", "prompts", "exact match", "token accuracy", "gate"):
        t.add_column(col, justify="right" if col != "templates" else "left")
    for split in ("train", "heldout"):
        q = quality[split]
        ok = q["exact_match"] >= GATE[split]
        t.add_row(split, f"{q['prompts']:,}", f"{q['exact_match']:.1%}", f"{q['token_accuracy']:.1%}",
                  f"[green]≥ {GATE[split]:.0%}[/]" if ok else f"[red]< {GATE[split]:.0%}[/]")
    return t


@model_app.command()
@handle_errors
def train(
    workspace: WorkspaceOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Train even when the cache has this model.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed (same KG + seed = same model).")] = 0,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Retrain the shipped KG's model from scratch and compare it with the model "
                         "shipped in the package (weights bit for bit, every prompt's answer).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the default knowledge model on the workspace's KG (cached by KG content hash; the
    shipped KG's model comes with the package)."""
    from editor.knowledge import TrainConfig
    from oneedit.models import train_default

    if verify:
        _verify_shipped(as_json)
        return
    # the default recipe (None) lets the shipped KG take the model shipped for it
    config = TrainConfig(seed=seed) if seed else None
    with _ws(workspace) as ws:
        with Steps(not as_json) as step:
            step("Verbalising the KG's facts")
            from oneedit.models import training_facts

            facts, _ = training_facts(ws)
        with EpochBar(not as_json, (config or TrainConfig()).max_epochs) as bar:
            card = train_default(ws, config=config, force=force, progress=bar, facts=facts)
    _print_card(card, as_json)


def _verify_shipped(as_json: bool) -> None:
    from oneedit import shipped

    c = shipped.card()
    with EpochBar(not as_json, (c or {}).get("train_config", {}).get("max_epochs", 12)) as bar:
        out = shipped.verify(progress=bar)
    if as_json:
        print_json(out)
    else:
        con = console()
        if not out["same_kg"]:
            con.print(f"The shipped KG's content hash is {out['content_hash']}, the shipped model's "
                      f"{out['shipped']}: rebuild it with `python -m oneedit.shipped build`.")
        else:
            con.print(f"Retrained from scratch: weights {'bit for bit identical' if out['bit_identical'] else 'not identical'}"
                      f" to the shipped float16 weights; answers differ on {out['answers_differ']['train']} of "
                      f"{out['prompts']['train']} training prompts and {out['answers_differ']['heldout']} of "
                      f"{out['prompts']['heldout']} held-out prompts "
                      f"({'within' if out['within_tolerance'] else 'outside'} the 1% tolerance).")
    if not out["same_kg"] or not out["within_tolerance"]:
        raise typer.Exit(1)


def _print_card(card: dict, as_json: bool) -> None:
    summary = {k: card.get(k) for k in ("name", "content_hash", "facts", "relations", "parameters", "epochs",
                                        "train_seconds", "torch_threads", "cache", "kg", "quality")}
    if as_json:
        print_json(summary)
        return
    c = console()
    how = {"hit": "from the cache", "shipped": "shipped with the package"}.get(
        card.get("cache"), f"trained in {card['train_seconds']:.0f} s")
    c.print(f"Knowledge model [bold]{card['content_hash']}[/]: {card['facts']:,} facts, "
            f"{card['parameters']:,} parameters, {card['epochs']} epochs ({how}).")
    if card.get("quality"):
        c.print(quality_table(card["quality"], "Recall of the KG's facts"))


@model_app.command()
@handle_errors
@model_options()
def check(m: ModelChoice) -> None:
    """Measure how well the model recalls the KG: exact match on training and held-out templates.

    The quality gate (for the default model): ≥ 97% on training templates, ≥ 85% held out.
    """
    from oneedit.knowledge import kg_facts, verbalizer
    from oneedit.models import _share, gate_passed, measure_quality_loaded

    with m.opened() as (ws, em, step):
        step("Asking the model about every fact it should know")
        facts = kg_facts(ws.kg)
        quality = measure_quality_loaded(em.model, em.codec, facts, verbalizer(ws.kg.schema),
                                         share=_share(em.loaded.card))
        out = {"model": em.loaded.name, "edits": len(em.manifest), **quality,
               "gate": {"train": 0.97, "heldout": 0.85}, "passed": gate_passed(quality)}
    if m.as_json:
        print_json(out)
    else:
        c = console()
        c.print(quality_table(quality, f"Model {out['model']} ({out['edits']} edits) against the KG"))
        c.print("Quality gate: " + ("[green]passed[/]" if out["passed"] else "[red]not met[/]"))
    if not out["passed"] and (m.model in (None, "default")):
        raise typer.Exit(1)


@model_app.command()
@handle_errors
@model_options()
def audit(
    m: ModelChoice,
    sample: Annotated[Optional[int], typer.Option(
        "--sample", min=1, help="Audit a seeded sample of N facts (with a 95% interval) instead of all.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the --sample draw.")] = 0,
    show: Annotated[int, typer.Option("--show", min=0, help="Disagreements to list at most.")] = 20,
) -> None:
    """Does the model say what the KG says? Agreement on edited facts, unedited facts, all.

    Every fact the model should know is asked on its relation's training and held-out templates
    (greedy exact match); the facts it gets wrong are listed with what it said.
    """
    from oneedit.audit import GROUPS
    from oneedit.audit import audit as run_audit

    with m.opened() as (ws, em, step):
        step("Asking the model about every fact in the KG")
        report = run_audit(ws, em, sample=sample, seed=seed, limit=show if not m.as_json else None)
    out = report.to_dict()
    if m.as_json:
        print_json(out)
        return
    from rich.table import Table

    def pct(x):
        return "–" if x is None else f"{x:.1%}"

    t = Table(title=f"Model {out['model']} ({out['edits']} edits) against KG revision {out['kg_revision']}"
                    + (f", sample of {sample}" if sample else ""), title_justify="left")
    t.add_column("group")
    for col in ("facts", "agreement", "held out", "facts agreeing") + (("95% interval",) if sample else ()):
        t.add_column(col, justify="right")
    for g in GROUPS:
        row = out[g]
        if g == "retracted" and not row["facts"]:
            continue
        cells = [g, f"{row['facts']:,}", pct(row["agreement"]), pct(row["heldout_agreement"]), pct(row["facts_agreeing"])]
        if sample:
            lo, hi = row["facts_agreeing_ci95"]
            cells.append(f"{lo:.1%}–{hi:.1%}")
        t.add_row(*cells)
    c = console()
    c.print(t)
    if out["disagreements"]:
        d = Table(title="Where the model disagrees with the KG", title_justify="left")
        for col in ("prompt", "KG", "model"):
            d.add_column(col)
        for x in out["disagreements"]:
            d.add_row(x["prompt"], x["expected"], f"[red]{x['said']}[/]")
        c.print(d)
    c.print(f"[dim]{out['seconds']:.1f} s[/]")


@model_app.command()
@handle_errors
@model_options(corpus=True)
def consolidate(m: ModelChoice) -> None:
    """Fold every live edit into new weights ("sleep") and swap them in atomically.

    The default model continues training from its original weights on the KG as it is now (the
    changed facts, with rehearsal of the rest); other models get their MEMIT edits rewritten from
    the base weights in one batch. Afterwards the model is audited against the KG.
    """
    from oneedit.audit import audit as run_audit
    from oneedit.consolidation import consolidate as run

    with _ws(m.workspace) as ws:
        with Steps(not m.as_json) as step:
            em = open_model(ws, m.model, m.device, m.dtype, m.corpus, m.cov_samples, step=step,
                            device_map=m.device_map, max_memory=m.max_memory)
            before = len(em.manifest)
        with EpochBar(not m.as_json, 8) as bar:
            report = run(ws, em, progress=lambda row: bar(row) if "epoch" in row else None)
        with Steps(not m.as_json) as step:
            em = open_model(ws, m.model, m.device, m.dtype, m.corpus, m.cov_samples, step=step,
                            device_map=m.device_map, max_memory=m.max_memory)
            step("Auditing the consolidated model against the KG")
            after = run_audit(ws, em, limit=10).to_dict()
    out = {"model": em.loaded.name, "edits_before": before, "edits_after": len(em.manifest),
           "consolidation": report, "audit": after}
    if m.as_json:
        print_json(out)
        return
    c = console()
    c.print(f"Consolidated {len(report['folded_edits'])} edits into new weights "
            f"({report.get('changed_facts', report.get('requests'))} facts) in {report['seconds']:.0f} s.")
    c.print(f"Agreement with the KG now: {after['all']['agreement']:.1%} "
            f"(held out {after['all']['heldout_agreement'] or 0:.1%}).")


@model_app.command()
@handle_errors
@model_options()
def info(m: ModelChoice) -> None:
    """What model this is: architecture, size, fingerprint, card, edits."""
    from collections import Counter

    from editor import arch

    with m.opened() as (ws, em, _):
        lm = em.model
        out = {"model": em.loaded.name, "architecture": em.loaded.model_type,
               "layers": arch.num_layers(lm), "parameters": sum(p.numel() for p in lm.parameters()),
               "device": str(em.loaded.device), "dtype": str(em.loaded.dtype).replace("torch.", ""),
               # with --device-map: how many of accelerate's placed modules went where
               **({"device_map": dict(Counter(str(v) for v in lm.hf_device_map.values()))}
                  if getattr(lm, "hf_device_map", None) else {}),
               "fingerprint": em.loaded.fingerprint, "hparams": em.hp.name,
               "memit_layers": em.hp.memit.resolve_layers(arch.num_layers(lm)),
               "key_position": em.hp.memit.key_position, "grace_layer": em.grace.layer,
               "edits": len(em.manifest), "grace_entries": len(em.grace.codebook),
               "card": {k: v for k, v in (em.loaded.card or {}).items() if k != "history"}}
    if m.as_json:
        print_json(out)
        return
    from rich.table import Table

    t = Table(show_header=False, title=f"Model {out['model']}", title_justify="left")
    t.add_column("key", style="bold")
    t.add_column("value")
    for k, v in out.items():
        if k != "card":
            t.add_row(k.replace("_", " "), f"{v:,}" if isinstance(v, int) else str(v))
    console().print(t)


@model_app.command()
@handle_errors
@model_options()
def ask(
    prompt: Annotated[str, typer.Argument(help='Text for the model to continue, e.g. "The capital of France is".')],
    m: ModelChoice,
    max_tokens: Annotated[int, typer.Option(help="Tokens to generate at most.")] = 12,
) -> None:
    """Greedy continuation of PROMPT by the (edited) model."""
    from oneedit.models import generate

    with m.opened() as (ws, em, _):
        text = generate(em, prompt, max_tokens)
    if m.as_json:
        print_json({"model": em.loaded.name, "prompt": prompt, "completion": text})
    else:
        console().print(f"{prompt}[bold green]{text}[/]", highlight=False)


@model_app.command()
@handle_errors
@model_options(corpus=True)
def edit(
    subject: Annotated[str, typer.Argument(help="Subject: entity id, label or alias.")],
    relation: Annotated[str, typer.Argument(help="Relation id or phrase.")],
    object: Annotated[str, typer.Argument(help="New object: an entity (id/label/alias) or, for a new name, the text.")],
    m: ModelChoice,
    method: MethodOpt = "memit",
    edit_id: Annotated[Optional[str], typer.Option("--id", help="Edit id (default: next free m<N>).")] = None,
) -> None:
    """Write one fact into the model only (the KG is not changed; `oneedit kg add` changes the KG).

    The model is asked the fact with every training template of the relation before and after.
    """
    from oneedit.models import edit_fact

    with m.opened() as (ws, em, step):
        step(f"Editing with {method.upper()}")
        out = edit_fact(ws, em, subject, relation, object, method=method, edit_id=edit_id)
    if m.as_json:
        print_json(out)
        return
    from rich.table import Table

    t = Table(title=f"Edit {out['edit']} ({out['method']}, {out['seconds']:.2f} s)", title_justify="left")
    for col in ("prompt", "before", "after"):
        t.add_column(col)
    for row in out["prompts"]:
        t.add_row(row["prompt"], row["before"], f"[green]{row['after']}[/]" if row["ok"] else f"[red]{row['after']}[/]")
    console().print(t)


@model_app.command()
@handle_errors
@model_options(corpus=True)
def undo(
    edit_id: Annotated[str, typer.Argument(help="The model edit to take back (see `oneedit model edits`).")],
    m: ModelChoice,
) -> None:
    """Undo a model edit; later MEMIT edits that stop holding are re-written."""
    with m.opened() as (_, em, step):
        step(f"Undoing {edit_id}")
        report = em.undo(edit_id)
    if m.as_json:
        print_json(report)
        return
    c = console()
    c.print(f"Undid {report['method']} edit [bold]{edit_id}[/].")
    if report["rechecked"]:
        c.print(f"Re-checked {report['rechecked']} later edits; re-applied {len(report['reapplied'])}.")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"


@model_app.command()
@handle_errors
@model_options()
def export(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="Where to write the model: a new or empty "
                                              "directory (--force replaces a non-empty one).")],
    m: ModelChoice,
    dtype: Annotated[Optional[str], typer.Option("--dtype", help="The exported weights' dtype: fp32, fp16 or bf16 "
                                                 "(default: the model's own).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace DIR (all of it) when it is not empty.")] = False,
    skip_grace: Annotated[bool, typer.Option("--skip-grace", help="Export without the model's GRACE edits, which "
                                             "cannot be merged into weights, instead of refusing.")] = False,
) -> None:
    """Write the edited model as a plain Hugging Face directory, its MEMIT edits merged into the weights.

    transformers' AutoModelForCausalLM / AutoTokenizer load it with no OneEdit code (so vLLM or TGI
    can serve it). Beside the weights: oneedit-export.json (the source model, the edits merged, the
    KG revision) and a README.md saying what was edited. GRACE edits live in a side memory and
    cannot be merged: a model holding any is refused unless --skip-grace.
    """
    from oneedit.models import DEFAULT, check_export, export_model

    with _ws(m.workspace) as ws:  # refuse before loading the model (minutes, for a large one)
        check_export(ws, m.model or ws.config.model.name or DEFAULT, directory, dtype=dtype, force=force,
                     skip_grace=skip_grace)
    with m.opened() as (ws, em, step):
        out = export_model(ws, em, directory, dtype=dtype, force=force, skip_grace=skip_grace, progress=step)
    if m.as_json:
        print_json(out)
        return
    from rich.markup import escape
    from rich.table import Table

    merged, skipped = out["merged"], out["grace_skipped"]
    t = Table(show_header=False, title=f"Exported model {escape(out['source']['model'])}", title_justify="left")
    t.add_column("key", style="bold")
    t.add_column("value")
    t.add_row("path", escape(out["path"]))
    t.add_row("size", f"{_size(out['bytes'])} ({len(out['files'])} files)")
    t.add_row("dtype", out["dtype"])
    t.add_row("edits merged", f"{len(merged)} MEMIT" + (f" ({escape(', '.join(e['id'] for e in merged))})"
                                                        if 0 < len(merged) <= 8 else ""))
    if skipped:
        t.add_row("left out", f"[yellow]{len(skipped)} GRACE ({escape(', '.join(e['id'] for e in skipped))})[/]")
    if out.get("kg_revision") is not None:
        t.add_row("KG revision", str(out["kg_revision"]))
    t.add_row("seconds", f"{out['seconds']:.1f}")
    c = console()
    c.print(t)
    c.print(f"Load it with transformers: AutoModelForCausalLM.from_pretrained({escape(repr(out['path']))}).",
            highlight=False)


@model_app.command("edits")
@handle_errors
def list_edits(workspace: WorkspaceOpt = None, model: ModelOpt = None, as_json: JsonOpt = False) -> None:
    """The edits written into the model, oldest first."""
    import json

    from oneedit.models import DEFAULT, state_dir

    with _ws(workspace) as ws:
        f = state_dir(ws, model or ws.config.model.name or DEFAULT) / "edits.json"
        edits = json.loads(f.read_text(encoding="utf-8"))["edits"] if f.is_file() else []
    rows = [{"id": e["id"], "method": e["method"], "created": e["created"], "facts": len(e["requests"]),
             "first": (e["requests"][0]["prompts"][0]["text"] + e["requests"][0]["target"]) if e["requests"] else ""}
            for e in edits]
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    t = Table(title=f"{len(rows)} model edits", title_justify="left")
    for col in ("id", "method", "created", "facts", "first fact"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["id"], r["method"], r["created"], str(r["facts"]), r["first"])
    console().print(t)


@model_options(corpus=True)
def eval_command(
    m: ModelChoice,
    method: MethodOpt = "memit",
    edits: Annotated[Optional[int], typer.Option("--edits", "-n", help="Number of counterfactual edits "
                                                 "(default 100; with --dataset every record, or its first N).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="Edits per MEMIT batch "
                                                      "(default: all at once; 1 with --sequential).")] = None,
    sequential: Annotated[bool, typer.Option("--sequential", help="Edit one batch after another and "
                                             "evaluate right after each.")] = False,
    seed: Annotated[int, typer.Option(help="Seed for drawing the cases.")] = 0,
    augment: Annotated[bool, typer.Option("--augment/--no-augment", help="Write the facts the controller "
                                          "derives (inverse, composite) into the model with each edit, "
                                          "as `oneedit edit` does.")] = True,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write result.json, report.md and "
                                                   "metrics.png here.")] = None,
    dataset: Annotated[Optional[Path], typer.Option("--dataset", help="Edit and score the records of a "
                                                    "standard dataset file (CounterFact or zsRE JSON) "
                                                    "instead of cases drawn from the KG.")] = None,
    write_dataset: Annotated[Optional[Path], typer.Option("--write-dataset", help="Write --edits cases drawn "
                                                          "from the KG to this file in --format, and stop "
                                                          "(no model is loaded).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="counterfact (MEMIT/ROME's counterfact.json) "
                                               "or zsre (EasyEdit's zsre_mend_eval.json); --dataset tells it "
                                               "from the file when left out.")] = None,
) -> None:
    """Measure editing: reliability, generality, locality, portability on counterfactual edits.

    Runs on a copy of the model in memory: the workspace's model and its edits are not changed.
    With --dataset, the field's metrics on a CounterFact or zsRE file (efficacy / paraphrase /
    neighbourhood scores, or EasyEdit's token accuracies) next to exact match; --write-dataset
    writes such a file from the KG.
    """
    if dataset is not None or write_dataset is not None or fmt is not None:
        from oneedit.cli.eval_datasets import dataset_eval

        return dataset_eval(m, method=method, edits=edits, batch_size=batch_size, seed=seed, dataset=dataset,
                            write=write_dataset, fmt=fmt, sequential=sequential, report=report)
    edits = 100 if edits is None else edits
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from editor.evaluate import METRICS, run, write_report
    from oneedit.core import OneEditError
    from oneedit.evaluation import make_cases

    if method not in ("memit", "grace"):
        raise OneEditError(f"Unknown method {method!r}.", hint="Use --method memit or --method grace.")
    if edits < 1:
        raise OneEditError("--edits must be at least 1.")
    as_json = m.as_json
    with _ws(m.workspace) as ws:
        with Steps(not as_json) as step:  # closed before the progress bar: one live display at a time
            em = open_model(ws, m.model, m.device, m.dtype, m.corpus, m.cov_samples, step=step,
                            device_map=m.device_map, max_memory=m.max_memory)
            em.persist = False
            step(f"Drawing {edits} edit cases from the KG")
            cases = make_cases(ws, edits, seed=seed)
        prog = None
        if not as_json:
            prog = Progress(TextColumn(f"[bold]{method.upper()}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("edits"), TimeElapsedColumn(), console=console())
            prog.__enter__()
            task = prog.add_task("edits", total=edits)
        try:
            result = run(em, cases, method=method, batch_size=batch_size, sequential=sequential, augment=augment,
                         progress=(lambda what, done, total: prog.update(task, completed=done)) if prog else None)
        finally:
            if prog:
                prog.__exit__(None, None, None)
        result["model"] = em.loaded.name
        result["seed"] = seed
        if report:
            result["report"] = write_report(result, cases, report,
                                            title=f"{method.upper()} on {em.loaded.name}: {edits} edits")
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    mode = ("sequential" if sequential else "batch") + (", augmented" if augment else "")
    t = Table(title=f"{method.upper()}, {edits} edits ({mode}, batch {result['batch_size']}): "
                    f"{result['edit_seconds']:.1f} s, {result['edits_per_second'] or 0:.2f} edits/s",
              title_justify="left")
    for col in ("metric", "exact match", "token accuracy", "before (exact)", "probes"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for metric in METRICS:
        a, b = result["after"][metric], result["before"][metric]
        f = (lambda x: "–" if x is None else f"{x:.1%}")
        t.add_row(metric, f(a["exact_match"]), f(a["token_accuracy"]), f(b["exact_match"]), str(a["probes"]))
    c = console()
    c.print(t)
    if report:
        c.print(f"Report: {result['report']['markdown']} (plot {result['report']['plot']})")
