"""The pipeline commands: ``edit``, ``ask``, ``rollback``, ``history``, ``import``, ``review``,
``protect`` — each a thin layer over :class:`oneedit.system.OneEdit`."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from oneedit.cli.options import JsonOpt, WorkspaceOpt
from oneedit.cli.output import Steps, console, handle_errors, print_json

UserOpt = Annotated[Optional[str], typer.Option(
    "--user", "-u", help="Act as this user (default: the workspace's local user, see config.yaml).")]
MethodOpt = Annotated[Optional[str], typer.Option(
    "--method", help="memit (weights, batched) or grace (codebook, lifelong); default from config.yaml.")]


REFUSED_EXIT = 3  # `oneedit edit`: the request was decided and refused (the ledger records why)


@contextmanager
def system(workspace, as_json: bool, user: str | None = None, *, write: bool = True):
    """The facade, under a spinner (none with --json): ``(oe, step)``. ``write``: as the workspace's
    one writer (refused while another process is); otherwise to read beside it."""
    from oneedit.system import OneEdit
    from oneedit.workspace import Workspace

    with Steps(not as_json) as step:
        step("Opening the workspace")
        ws = Workspace.open(workspace, write=write)
        try:
            oe = OneEdit(ws, user=user, progress=step)
        except BaseException:
            ws.close()
            raise
        try:
            recovered = oe.recover_if_writer()
            if recovered and not as_json:
                console().print(f"[yellow]Recovered {len(recovered)} edit(s) a crash left in flight.[/]")
            yield oe, step
        finally:
            oe.close()


def _check_method(method: str | None) -> None:
    if method not in (None, "memit", "grace"):
        from oneedit.core import OneEditError

        raise OneEditError(f"Unknown editing method {method!r}.", hint="Use --method memit or --method grace.")


# -- rendering ---------------------------------------------------------------------------------------
def _fact(label, d: dict) -> str:
    return f"({label(d['subject'])}, {d['relation']}, {label(d['object'])})"


def render_plan(c, oe, plan: dict) -> None:
    from rich.table import Table

    label = oe.kg.label
    for r in plan["requested"]:
        c.print(f"[bold]{r['op']}[/] {_fact(label, r)}")
    for e in plan["new_entities"]:
        c.print(f"  new {e['type']}: [bold]{e['label']}[/] ({e['id']})")
    if plan["conflicts"]:
        t = Table(title="Conflicts", title_justify="left")
        for col in ("fact", "why", "resolution"):
            t.add_column(col)
        colour = {"replace": "yellow", "reject": "red", "needs_review": "magenta"}
        for cf in plan["conflicts"]:
            t.add_row(_fact(label, cf["fact"]) if cf["fact"] else "—", cf["reason"],
                      f"[{colour[cf['resolution']]}]{cf['resolution']}[/]")
        c.print(t)
    if plan["derived"]:
        t = Table(title="Facts that follow (rules)", title_justify="left")
        for col in ("", "fact", "rule", "because of"):
            t.add_column(col)
        for d in plan["derived"]:
            t.add_row("[green]+[/]" if d["op"] == "+" else "[red]−[/]", _fact(label, d["fact"]), d["rule"],
                      ", ".join(_fact(label, v) for v in d["via"]))
        c.print(t)
    failed = [ch for ch in plan["checks"] if not ch["passed"]]
    for ch in failed:
        c.print(f"[red]check {ch['name']}:[/] {ch['message']}")
    added, removed = len(plan["kg_diff"]["added"]), len(plan["kg_diff"]["removed"])
    c.print(f"KG: +{added} −{removed} triples; model: {len(plan['model_facts'])} fact(s) to write.")


def render_outcome(c, oe, out: dict) -> None:
    from rich.table import Table

    status = out["status"]
    colour = {"applied": "green", "rejected": "red", "needs_review": "magenta"}.get(status, "yellow")
    line = f"[{colour}]{status}[/]" + (f" as edit #{out['edit']}" if out["edit"] else "")
    plan = out.get("plan") or {}
    if plan.get("reasons") and status != "applied":
        line += ": " + "; ".join(plan["reasons"])
    c.print(line + f" ({out['seconds']:.1f} s)")
    model = out.get("model")
    if model and model.get("answers"):
        t = Table(title=f"The model, before and after ({model['method']}, {model['seconds']:.1f} s)",
                  title_justify="left")
        for col in ("prompt", "expected", "before", "after", ""):
            t.add_column(col)
        for a in model["answers"]:
            t.add_row(a["prompt"] + ("" if a["split"] == "train" else " [dim](held out)[/]"), a["expected"],
                      a["before"], a["after"], "[green]✓[/]" if a["ok"] else "[red]✗[/]")
        c.print(t)
    elif status == "applied" and model is None:
        c.print("[dim]No model in this workspace: the KG was edited (train one with `oneedit model train`).[/]")


# -- commands ----------------------------------------------------------------------------------------
def edit_command(
    text: Annotated[str, typer.Argument(help='The change, e.g. "The capital of France is Lyon" ("-": stdin).')],
    method: MethodOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")] = False,
    user: UserOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Interpret a change, check it against the KG (conflicts, rules, safety), show the plan, and
    apply it to the KG and the model, showing the model's answers before and after.

    Exit status: 0 applied, waiting for review, unchanged or cancelled; 3 refused (see the reasons)."""
    _check_method(method)
    if text == "-":
        text = sys.stdin.read()
    c = None if as_json else console()

    def confirm(plan) -> bool:
        if yes:
            return True
        if as_json:
            from oneedit.core import OneEditError

            raise OneEditError("With --json the plan cannot be confirmed interactively.",
                               hint="Add --yes to apply it, or --dry-run to only see it.")
        step.stop()
        render_plan(c, oe, plan.to_dict())
        return typer.confirm("Apply this edit?", default=True)

    with system(workspace, as_json, user) as (oe, step):
        step("Interpreting and checking")
        out = oe.submit(text, method=method, confirm=confirm, dry_run=dry_run)
        result = out.to_dict()
        if as_json:
            print_json(result)
        else:
            step.stop()
            if (yes or dry_run or out.status != "applied") and out.status != "cancelled":
                render_plan(c, oe, result["plan"])
            render_outcome(c, oe, result)
    if out.status == "rejected":
        raise typer.Exit(REFUSED_EXIT)


def ask_command(
    question: Annotated[str, typer.Argument(help='A question, e.g. "What is the capital of France?"')],
    user: UserOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The KG's answer and the model's, side by side, flagged when they disagree (answered by the
    workspace's server while one runs)."""
    from oneedit.cli.remote import served

    client = served(workspace) if user is None else None
    if client is not None:
        with client, Steps(not as_json) as step:
            step("Asking the server")
            answers = client.ask(question)["answers"]
    else:
        with system(workspace, as_json, user, write=False) as (oe, step):
            step("Asking the KG and the model")
            answers = oe.ask(question)
    if as_json:
        print_json({"question": question, "answers": answers})
        return
    render_answers(console(), answers)


def render_answers(c, answers: list[dict]) -> None:
    from rich.table import Table

    t = Table(title_justify="left")
    for col in ("question", "KG", "model", ""):
        t.add_column(col)
    for a in answers:
        kg = a.get("kg")
        kg_text = ("yes" if kg else "no") if isinstance(kg, bool) else (", ".join(kg) or "—")
        model = a.get("model")
        if a.get("kind") == "yes_no" and model is not None:
            model = ("yes" if a.get("model_says_yes") else "no") + f" [dim](says {model!r})[/]"
        flag = {True: "[green]agree[/]", False: "[red]DISAGREE[/]"}.get(a.get("agree"), f"[dim]{a.get('note', '')}[/]")
        t.add_row(a.get("question", ""), kg_text, model if model is not None else "—", flag)
    c.print(t)


def rollback_command(
    edit: Annotated[Optional[int], typer.Argument(help="The edit id to undo (see `oneedit history`).")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Return to this KG revision (e.g. 12 or r12) and "
                                              "the matching model state.")] = None,
    cascade: Annotated[bool, typer.Option("--cascade", help="Also roll back later edits that depend on it.")] = False,
    user: UserOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Undo an edit on both sides (KG with its derived facts, and the model)."""
    from oneedit.core import OneEditError

    if (edit is None) == (to is None):
        raise OneEditError("Give an edit id or --to REV (one of them).", hint="oneedit rollback 12 | oneedit rollback --to r40")
    with system(workspace, as_json, user) as (oe, step):
        step("Rolling back")
        if to is not None:
            rev = int(to.lstrip("r")) if to.lstrip("r").isdigit() else None
            if rev is None:
                raise OneEditError(f"{to!r} is not a revision.", hint="Use a number like 12 or r12.")
            result = oe.rollback_to(rev)
        else:
            result = oe.rollback(edit, cascade=cascade)
    if as_json:
        print_json(result)
        return
    c = console()
    c.print("[green]Rolled back[/] " + (", ".join(f"#{e}" for e in result["rolled_back"]) or "no edits")
            + (f"; KG back at r{result['to']}" if "to" in result else "") + ".")


def history_command(
    user_filter: Annotated[Optional[str], typer.Option("--user", help="Only this user's edits.")] = None,
    entity: Annotated[Optional[str], typer.Option("--entity", help="Only edits touching this entity.")] = None,
    status: Annotated[Optional[str], typer.Option("--status", help="applied, rejected, needs_review, "
                                                  "rolled_back, failed, pending.")] = None,
    limit: Annotated[int, typer.Option(help="How many edits to show (newest first).")] = 20,
    repairs: Annotated[bool, typer.Option("--repairs", help="Show the model's self-repairs instead: facts "
                                          "an edit knocked over in the model, written back.")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Edits with status, author, the conflicts found and the derived facts (or, with --repairs,
    the facts the model drifted on and got back)."""
    from oneedit.cli.remote import served

    client = served(workspace) if not repairs else None
    if client is not None:  # the workspace's server answers (it is the one writer)
        with client:
            rows = client.history(author=user_filter, status=status, entity=entity, limit=limit)
        if as_json:
            print_json(rows)
        else:
            console().print(history_table(None, rows))
        return
    with system(workspace, as_json, write=False) as (oe, _):
        if repairs:
            rows = oe.ledger.repairs(limit=limit)
            if as_json:
                print_json(rows)
                return
            console().print(repairs_table(oe, rows))
            return
        rows = oe.history(user=user_filter, entity=entity, status=status, limit=limit)
        if as_json:
            print_json(rows)
            return
        console().print(history_table(oe, rows))
        n = len(oe.ledger.repairs(limit=None))
        if n:
            console().print(f"[dim]The model repaired itself {n} time(s): `oneedit history --repairs`.[/]")


def repairs_table(oe, rows: list[dict]):
    from rich.table import Table

    label = oe.kg.label
    t = Table(title="Model self-repairs (facts an edit knocked over, written back)", title_justify="left")
    for col in ("id", "when", "model edit", "after", "facts", "undone"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["id"]), r["created"][:19].replace("T", " "), r["model_edit"], ", ".join(r["caused_by"]) or "—",
                  "; ".join(_fact(label, dict(zip(("subject", "relation", "object"), f, strict=True))) for f in r["facts"]),
                  "yes" if r["undone"] else "")
    return t


def history_table(oe, rows: list[dict]):
    from rich.table import Table

    label = oe.kg.label if oe is not None else str
    t = Table(title="Edit history", title_justify="left")
    for col in ("id", "when", "author", "status", "request", "conflicts", "derived", "model"):
        t.add_column(col)
    colour = {"applied": "green", "rejected": "red", "needs_review": "magenta", "rolled_back": "yellow",
              "failed": "red"}
    for r in rows:
        plan = r.get("plan") or {}
        conflicts = "; ".join(f"{cf['resolution']} {_fact(label, cf['fact'])}" if cf.get("fact") else cf["reason"]
                              for cf in plan.get("conflicts", [])) or "—"
        if r["status"] == "rejected" and plan.get("refused_by"):
            conflicts = f"refused by {plan['refused_by']}" + ("; " + conflicts if conflicts != "—" else "")
        derived = "; ".join(f"{d['op']}{_fact(label, d['fact'])}" for d in plan.get("derived", [])) or "—"
        me = r.get("model_edit") or {}
        t.add_row(str(r["id"]), r["created"][:19].replace("T", " "), r["author"],
                  f"[{colour.get(r['status'], 'white')}]{r['status']}[/]", r["text"], conflicts, derived,
                  f"{me.get('method', '')} {me.get('id') or ''}".strip() or "—")
    return t


def import_command(
    file: Annotated[Path, typer.Argument(help="Requests: .txt (one per line), .csv, .jsonl, .ttl or .nt.")],
    fmt: Annotated[Optional[str], typer.Option("--format", help="When the extension does not say.")] = None,
    method: MethodOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Lines per model edit (one MEMIT batch).")] = 64,
    all_or_nothing: Annotated[bool, typer.Option("--all-or-nothing", help="Apply nothing if any line cannot be "
                                                 "read or would be refused.")] = False,
    user: UserOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply a batch file: each line checked and applied in order, the model edited in batches;
    lines applied by an earlier run of the same file are skipped.

    Exit status: 0 when every line was applied, unchanged, skipped or sent for review; 3 when any
    line failed or was refused (the others were applied; --all-or-nothing applies none then)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    _check_method(method)
    with system(workspace, as_json, user) as (oe, step):
        if as_json:
            summary = oe.import_file(file, fmt, method=method, batch_size=batch_size, all_or_nothing=all_or_nothing)
        else:
            step.stop()
            with Progress(TextColumn("[bold]Importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console()) as bar:
                task = bar.add_task("import", total=None)
                summary = oe.import_file(file, fmt, method=method, batch_size=batch_size,
                                         all_or_nothing=all_or_nothing,
                                         progress=lambda n, total: bar.update(task, completed=n, total=total))
    failed = summary["failed"] + summary["rejected"]
    if as_json:
        print_json(summary)
        if failed:
            raise typer.Exit(REFUSED_EXIT)
        return
    from rich.table import Table

    c = console()
    t = Table(title=f"Imported {file.name} ({summary['lines']} lines, {summary['seconds']:.1f} s, "
              f"{summary['model_batches']} model batch(es))", title_justify="left", show_header=False)
    for k in ("applied", "unchanged", "skipped", "needs_review", "rejected", "failed"):
        t.add_row(k.replace("_", " "), str(summary[k]))
    c.print(t)
    for p in summary["problems"][:20]:
        c.print(f"  line {p['line']}: [red]{p['status']}[/] {p['reason']}")
    if failed:
        c.print(f"[red]{failed} line(s) not applied[/] (see above); the other lines were. "
                "With --all-or-nothing, a file applies whole or not at all.")
        raise typer.Exit(REFUSED_EXIT)


review_app = typer.Typer(help="The review queue: edits waiting for a curator.", no_args_is_help=True)


@review_app.command("list")
@handle_errors
def review_list(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Edits waiting for review, oldest first."""
    with system(workspace, as_json, write=False) as (oe, _):
        rows = oe.review.queue()
        if as_json:
            print_json(rows)
            return
        from rich.table import Table

        t = Table(title="Waiting for review", title_justify="left")
        for col in ("id", "author", "request", "why"):
            t.add_column(col)
        for r in rows:
            t.add_row(str(r["id"]), r["author"], r["text"], "; ".join((r.get("plan") or {}).get("reasons", [])))
        console().print(t)


@review_app.command("approve")
@handle_errors
def review_approve(edit: int, method: MethodOpt = None, user: UserOpt = None, workspace: WorkspaceOpt = None,
                   as_json: JsonOpt = False) -> None:
    """Approve an edit: it is re-checked against today's KG and applied."""
    _check_method(method)
    with system(workspace, as_json, user) as (oe, step):
        step("Applying the approved edit")
        out = oe.approve(edit, method=method).to_dict()
        if as_json:
            print_json(out)
            return
        render_outcome(console(), oe, out)


@review_app.command("reject")
@handle_errors
def review_reject(edit: int, reason: Annotated[str, typer.Option(help="Why (kept in the ledger).")] = "",
                  user: UserOpt = None, workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Reject an edit waiting for review; nothing changes in the KG or the model."""
    with system(workspace, as_json, user) as (oe, _):
        out = oe.reject(edit, reason=reason)
    if as_json:
        print_json(out)
        return
    console().print(f"Edit #{edit} [red]rejected[/].")


def protect_command(
    subject: str, relation: str, object: str,
    remove: Annotated[bool, typer.Option("--remove", help="Unprotect the fact.")] = False,
    reason: Annotated[str, typer.Option(help="Why it is protected.")] = "",
    user: UserOpt = None,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Protect a fact (curators): edits that would retract it are refused."""
    with system(workspace, as_json, user) as (oe, _):
        t = oe.protect(subject, relation, object, reason=reason, remove=remove)
    if as_json:
        print_json({"fact": {"subject": t.subject, "relation": t.relation, "object": t.object},
                    "protected": not remove})
        return
    console().print(("Unprotected " if remove else "Protected ") + str(t))
