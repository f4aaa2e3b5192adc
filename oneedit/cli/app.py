"""Top-level commands: ``init``, ``demo`` and the ``kg`` group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from oneedit.cli.kg import kg_app
from oneedit.cli.options import JsonOpt, WorkspaceOpt
from oneedit.cli.output import Steps, console, handle_errors, print_json

app = typer.Typer(
    name="oneedit",
    help="OneEdit: keep a knowledge graph and a language model consistent with each other.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(kg_app, name="kg")


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


@app.command()
@handle_errors
def init(
    workspace: WorkspaceOpt = None,
    data: Annotated[Optional[Path], typer.Option(help="Data directory with schema.yaml and world/*.csv "
                                                 "(default: the shipped kg_data).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a workspace from the shipped world KG (safe to run twice)."""
    from oneedit.workspace import Workspace

    with Steps(not as_json) as step:
        ws, created = Workspace.init(workspace, data=data, progress=step)
    with ws:
        summary = ws.summary() | {"created": created}
    _report(ws.root, summary, as_json)


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
def demo(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Run the main job on the embedded default: set up the workspace and show what it holds."""
    from oneedit.core import OneEditError
    from oneedit.workspace import Workspace

    with Steps(not as_json) as step:
        ws, created = Workspace.init(workspace, progress=step)
        with ws:
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
                             "object": ws.kg.label(f.object)} for f in facts[:1]]
    summary["valid"] = report.ok
    summary["samples"] = samples
    c = _report(ws.root, summary, as_json)
    if c is None:
        return
    from rich.table import Table

    t = Table(title="Sample facts (base and derived)", title_justify="left")
    for col in ("subject", "relation", "object"):
        t.add_column(col)
    for row in samples:
        t.add_row(row["subject"], row["relation"], row["object"])
    c.print(t)
    c.print("Schema validation: " + ("[green]passed[/]" if report.ok else
                                       f"[red]{len(report.violations)} violations[/] (oneedit kg validate)"))


def main() -> None:
    app()
