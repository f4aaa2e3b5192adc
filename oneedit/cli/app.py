"""Top-level commands: ``init``, ``demo``, ``parse`` and the ``kg`` and ``model`` groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from oneedit.cli.kg import kg_app
from oneedit.cli.model import eval_command, model_app
from oneedit.cli.options import JsonOpt, WorkspaceOpt, store_config
from oneedit.cli.output import Steps, console, handle_errors, print_json
from oneedit.cli.chat import chat_command
from oneedit.cli.edit import (
    ask_command,
    edit_command,
    history_command,
    import_command,
    protect_command,
    review_app,
    rollback_command,
)
from oneedit.cli.parse import parse_command
from oneedit.cli.serve import serve_command
from oneedit.cli.users import users_app

app = typer.Typer(
    name="oneedit",
    help="OneEdit: keep a knowledge graph and a language model consistent with each other.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(kg_app, name="kg")
app.add_typer(model_app, name="model")
app.command("eval")(handle_errors(eval_command))
app.command("parse")(handle_errors(parse_command))
app.command("edit")(handle_errors(edit_command))
app.command("chat")(handle_errors(chat_command))
app.command("ask")(handle_errors(ask_command))
app.command("rollback")(handle_errors(rollback_command))
app.command("history")(handle_errors(history_command))
app.command("import")(handle_errors(import_command))
app.command("protect")(handle_errors(protect_command))
app.add_typer(review_app, name="review")
app.add_typer(users_app, name="users")
app.command("serve")(handle_errors(serve_command))


def _summary_table(summary: dict):
    from rich.table import Table

    t = Table(title="OneEdit workspace", show_header=False, title_justify="left")
    t.add_column("key", style="bold")
    t.add_column("value")
    for key in ("workspace", "store", "user", "snapshot", "revision", "triples", "entities", "facts",
                "relations", "derived_facts", "ledger_edits"):
        v = summary.get(key)
        t.add_row(key.replace("_", " "), f"{v:,}" if isinstance(v, int) else str(v))
    return t


NoModelOpt = Annotated[bool, typer.Option("--no-model", help="Set up the KG only; train the knowledge "
                                          "model later with `oneedit model train`.")]


def _ensure_model(ws, as_json: bool) -> dict | None:
    """Train the default knowledge model if the workspace uses it and has none (cached by KG hash)."""
    from oneedit.cli.model import EpochBar
    from oneedit.models import DEFAULT, default_card, has_default, train_default

    if ws.config.model.name != DEFAULT:
        return None
    if has_default(ws):
        card = default_card(ws) or {}
        return {**card, "cache": "present"}
    from editor.knowledge import TrainConfig, content_hash
    from oneedit.cli.output import Steps
    from oneedit.models import shipped_matches, training_facts

    with Steps(not as_json) as step:
        step("Reading the KG's facts for the knowledge model")
        facts, verb = training_facts(ws)
        key = content_hash(facts, verb, TrainConfig())
        if shipped_matches(key):
            step(f"Installing the knowledge model shipped for this KG (content hash {key}, checked)")
            return train_default(ws, facts=facts)
    if not as_json:
        console().print("Training the knowledge model on the KG's facts (once; later workspaces over "
                        "the same KG reuse it from the cache)…")
    with EpochBar(not as_json, TrainConfig().max_epochs) as bar:
        return train_default(ws, progress=bar, facts=facts)


def _model_summary(card: dict | None) -> dict | None:
    if not card:
        return None
    q = card.get("quality") or {}
    return {"content_hash": card.get("content_hash"), "facts": card.get("facts"),
            "train_seconds": card.get("train_seconds"), "cache": card.get("cache"),
            "train_exact_match": (q.get("train") or {}).get("exact_match"),
            "heldout_exact_match": (q.get("heldout") or {}).get("exact_match"), "passed": q.get("passed")}


@app.command()
@handle_errors
def init(
    workspace: WorkspaceOpt = None,
    data: Annotated[Optional[Path], typer.Option(help="Data directory with schema.yaml and world/*.csv "
                                                 "(default: the shipped kg_data).")] = None,
    no_model: NoModelOpt = False,
    store: Annotated[str, typer.Option("--store", help="KG store: embedded (on disk, one machine) or neo4j.")] = "embedded",
    uri: Annotated[Optional[str], typer.Option("--uri", help="neo4j: the Bolt URI, e.g. bolt://db:7687.")] = None,
    db_user: Annotated[str, typer.Option("--user", help="neo4j: the database user.")] = "neo4j",
    password_env: Annotated[Optional[str], typer.Option(
        "--password-env", help="neo4j: the environment variable holding the password (never the password itself).")] = None,
    database: Annotated[Optional[str], typer.Option("--database", help="neo4j: database name (default: the server's).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a workspace from the shipped world KG and train its knowledge model (safe to run twice).

    With `--store neo4j --uri bolt://HOST:7687 [--user U --password-env VAR]` the KG lives in a Neo4j
    database (an empty one is loaded; one that already holds a OneEdit KG is used as it is)."""
    from oneedit.workspace import Workspace

    store_cfg = store_config(store, uri, db_user, password_env, database)
    with Steps(not as_json) as step:
        ws, created = Workspace.init(workspace, data=data, progress=step, store=store_cfg)
    with ws:
        model = None if no_model else _ensure_model(ws, as_json)
        summary = ws.summary() | {"created": created, "model": _model_summary(model)}
    c = _report(ws.root, summary, as_json)
    if c is not None and summary["model"]:
        _print_model_line(c, summary["model"])


def _print_model_line(c, m: dict) -> None:
    how = {"hit": "from the cache", "present": "already trained", "shipped": "shipped with the package, float16"}.get(
        m["cache"], f"trained in {m['train_seconds']:.0f} s")
    gate = "[green]gate passed[/]" if m["passed"] else "[red]below the quality gate[/]"
    c.print(f"Knowledge model {m['content_hash']} ({how}): {m['facts']:,} facts, recall "
            f"{m['train_exact_match']:.1%} on training templates, {m['heldout_exact_match']:.1%} held out — {gate}.")


def _report(root, summary: dict, as_json: bool):
    """Print the summary (JSON, or a table); returns the console for more output, if human."""
    if as_json:
        print_json(summary)
        return None
    c = console()
    c.print(("Created" if summary["created"] else "Using existing") + f" workspace at [bold]{root}[/]")
    c.print(_summary_table(summary))
    return c


@app.command()
@handle_errors
def demo(workspace: WorkspaceOpt = None, no_model: NoModelOpt = False, as_json: JsonOpt = False) -> None:
    """Run the main job on the embedded default: set up the workspace and its knowledge model, show
    what the KG and the model each say, then edit both together (a conflict, an inverse and a
    multi-hop consequence, a refused toxic edit, rollbacks). The tour rolls back its own edits."""
    import time

    from oneedit.core import OneEditError
    from oneedit.workspace import Workspace

    started = time.perf_counter()
    timings: dict[str, float] = {}
    with Steps(not as_json) as step:
        ws, created = Workspace.init(workspace, progress=step)
    timings["workspace"] = time.perf_counter() - started
    with ws:
        card = None if no_model else _ensure_model(ws, as_json)
        timings["model"] = time.perf_counter() - started - timings["workspace"]
        with Steps(not as_json) as step:
            step("Summarising the KG")
            summary = ws.summary() | {"created": created}
            report = ws.kg.validate()
            samples = []
            for s, r in (("france", "capital"), ("albert_einstein", "birth_country"),
                         ("apple", "ceo"), ("united_kingdom", "head_of_state_spouse")):
                try:
                    facts = ws.kg.query(s, r)
                except OneEditError:  # the sample entity may be absent from a custom KG
                    continue
                samples += [{"subject": ws.kg.label(f.subject), "relation": f.relation,
                             "object": ws.kg.label(f.object), "_triple": f} for f in facts[:1]]
            if card and samples:
                step("Asking the knowledge model the same questions")
                _ask_model(ws, samples)
            for row in samples:
                row.pop("_triple", None)
        summary["valid"] = report.ok
        summary["samples"] = samples
        summary["model"] = _model_summary(card)
        c = None if as_json else _report(ws.root, summary, as_json)
        if c is not None:
            _print_samples(c, summary, report)
        if all(ws.kg.store.entity(e) for e in ("france", "albert_einstein", "apple")):
            from oneedit.cli.demo import run_tour

            before_tour = time.perf_counter()
            summary["tour"] = run_tour(ws, as_json=as_json, with_model=card is not None)
            timings["tour"] = time.perf_counter() - before_tour
    total = time.perf_counter() - started
    summary["seconds"] = {"total": round(total, 1), **{k: round(v, 1) for k, v in timings.items()}}
    if as_json:
        print_json(summary)
    else:
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        first = "This first run" if created else "This run"
        console().print(f"{first} took {total:.0f} s ({parts}).")


def _print_samples(c, summary: dict, report) -> None:
    from rich.table import Table

    t = Table(title="Sample facts (base and derived): the KG and the model", title_justify="left")
    for col in ("subject", "relation", "KG", "model prompt", "model says"):
        t.add_column(col)
    for row in summary["samples"]:
        said = row.get("model_answer")
        t.add_row(row["subject"], row["relation"], row["object"], row.get("model_prompt", "–"),
                  "–" if said is None else (f"[green]{said}[/]" if said == row["object"] else f"[red]{said}[/]"))
    c.print(t)
    if summary["model"]:
        _print_model_line(c, summary["model"])
    c.print("Schema validation: " + ("[green]passed[/]" if report.ok else
                                       f"[red]{len(report.violations)} violations[/] (oneedit kg validate)"))


def _ask_model(ws, samples: list[dict]) -> None:
    from editor.probe import continuations
    from oneedit.knowledge import Labeller, verbalizer
    from oneedit.models import open_model

    em = open_model(ws)
    verb, label = verbalizer(ws.kg.schema), Labeller(ws.kg)
    prompts = [verb.prompt(label.fact(row["_triple"]), "train") for row in samples]
    for row, p, said in zip(samples, prompts, continuations(em.model, em.codec, prompts), strict=True):
        row["model_prompt"] = p.text
        row["model_answer"] = said.strip()


def main() -> None:
    app()
