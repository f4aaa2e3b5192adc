"""``oneedit kg ...``: inspect and change the knowledge graph directly (each change a revision)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from oneedit.cli.options import JsonOpt, WorkspaceOpt
from oneedit.cli.output import Steps, console, handle_errors, print_json

kg_app = typer.Typer(help="Inspect and change the knowledge graph; every change is a revision.",
                     no_args_is_help=True)


def _open(workspace, *, write: bool = True):
    """The workspace, after recovery: an edit a crash left half-applied is undone before any
    ``kg`` command reads or changes the KG (as every other command does on open; a reader
    recovers only while no process writes). ``write``: as the one writer."""
    from oneedit.workspace import Workspace

    ws = Workspace.open(workspace, write=write)
    try:
        if ws.ledger.interrupted():
            from oneedit.system import OneEdit

            oe = OneEdit(ws)
            try:
                oe.recover_if_writer()
            finally:
                oe.users.close()
                oe.protected.close()
    except BaseException:
        ws.close()
        raise
    return ws


def _rev_dict(rev) -> dict | None:
    if rev is None:
        return None
    return {"id": rev.id, "author": rev.author, "time": rev.time.isoformat(), "message": rev.message,
            "added": rev.n_added, "removed": rev.n_removed}


def _triple_dict(kg, t) -> dict:
    return {"subject": {"id": t.subject, "label": kg.label(t.subject)}, "relation": t.relation,
            "object": {"id": t.object, "label": kg.label(t.object)}}


@kg_app.command()
@handle_errors
def stats(workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Counts: triples, entities, facts per relation, derived facts, current revision."""
    with _open(workspace, write=False) as ws:
        s = ws.kg.stats()
        s["relation_ids"] = ws.kg.schema.relation_names()
    if as_json:
        print_json(s)
        return
    from rich.table import Table

    c = console()
    t = Table(title=f"KG at r{s['revision']} (facts as of {s['snapshot']})", title_justify="left")
    t.add_column("measure")
    t.add_column("count", justify="right")
    for k in ("triples", "entities", "facts", "relations", "derived_facts"):
        t.add_row(k.replace("_", " "), f"{s[k]:,}")
    c.print(t)
    t2 = Table(title="Facts by relation", title_justify="left")
    t2.add_column("relation")
    t2.add_column("facts", justify="right")
    for r, n in s["facts_by_relation"].items():
        t2.add_row(r, f"{n:,}")
    t3 = Table(title="Entities by type", title_justify="left")
    t3.add_column("type")
    t3.add_column("entities", justify="right")
    for r, n in s["entities_by_type"].items():
        t3.add_row(r, f"{n:,}")
    c.print(t2, t3)


@kg_app.command()
@handle_errors
def query(
    subject: Annotated[Optional[str], typer.Option("--subject", "-s", help="Entity id, label or alias.")] = None,
    relation: Annotated[Optional[str], typer.Option("--relation", "-r", help="Relation id or label.")] = None,
    object: Annotated[Optional[str], typer.Option("--object", "-o", help="Entity id, label or alias.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many facts.")] = 100,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Facts matching a pattern (any of subject/relation/object may be left out)."""
    with _open(workspace, write=False) as ws:
        kg = ws.kg
        facts = kg.query(subject, relation, object)
        rows = [_triple_dict(kg, t) for t in facts[:limit]]
    if as_json:
        print_json({"count": len(facts), "facts": rows})
        return
    from rich.table import Table

    t = Table(title=f"{len(facts):,} fact(s)" + (f", first {limit}" if len(facts) > limit else ""),
              title_justify="left")
    for col in ("subject", "relation", "object"):
        t.add_column(col)
    for r in rows:
        t.add_row(f"{r['subject']['label']} [dim]({r['subject']['id']})[/]", r["relation"],
                  f"{r['object']['label']} [dim]({r['object']['id']})[/]")
    console().print(t)


def _change(kind: str, subject: str, relation: str, object: str, message, workspace, as_json) -> None:
    with _open(workspace) as ws:
        kg = ws.kg
        fn = kg.add_fact if kind == "add" else kg.remove_fact
        rev = fn(subject, relation, object, author=ws.config.user, message=message)
        diff = kg.store.revision(rev.id, with_diff=True).diff
        out = {"revision": _rev_dict(rev), "added": [list(t.as_tuple()) for t in diff.added],
               "removed": [list(t.as_tuple()) for t in diff.removed]}
    if as_json:
        print_json(out)
        return
    c = console()
    c.print(f"[green]r{rev.id}[/] {rev.message}")
    for t in diff.added:
        c.print(f"  [green]+[/] {t}")
    for t in diff.removed:
        c.print(f"  [red]-[/] {t}")


@kg_app.command()
@handle_errors
def add(subject: str, relation: str, object: str,
        message: Annotated[Optional[str], typer.Option("--message", "-m", help="Revision message.")] = None,
        workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Add a fact (checked against the schema; its inverse/symmetric mirror is added too)."""
    _change("add", subject, relation, object, message, workspace, as_json)


@kg_app.command()
@handle_errors
def remove(subject: str, relation: str, object: str,
           message: Annotated[Optional[str], typer.Option("--message", "-m", help="Revision message.")] = None,
           workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Remove a fact (with its inverse/symmetric mirror)."""
    _change("remove", subject, relation, object, message, workspace, as_json)


@kg_app.command("log")
@handle_errors
def log_(limit: Annotated[int, typer.Option(help="How many revisions to show.")] = 20,
         workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Revision history, newest first."""
    with _open(workspace, write=False) as ws:
        revs = ws.kg.store.history(limit=limit)
    if as_json:
        print_json({"revisions": [_rev_dict(r) for r in revs]})
        return
    from rich.table import Table

    t = Table(title="KG revisions", title_justify="left")
    for col in ("rev", "time", "author", "+", "-", "message"):
        t.add_column(col)
    for r in revs:
        t.add_row(f"r{r.id}", r.time.strftime("%Y-%m-%d %H:%M:%S"), r.author, f"{r.n_added:,}",
                  f"{r.n_removed:,}", r.message)
    console().print(t)


def _rev_arg(value: str) -> int:
    v = value.strip().lower().removeprefix("r")
    if not v.isdigit():
        from oneedit.core import RevisionError

        raise RevisionError(f"{value!r} is not a revision id.", hint="Use a number like 12 or r12 (see `oneedit kg log`).")
    return int(v)


@kg_app.command()
@handle_errors
def revert(rev: Annotated[str, typer.Argument(help="Revision to undo (e.g. 12 or r12).")],
           workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Undo one revision, as a new revision."""
    rev_id = _rev_arg(rev)
    with _open(workspace) as ws:
        new, skipped = ws.kg.revert(rev_id, author=ws.config.user)
    out = {"reverted": rev_id, "revision": _rev_dict(new), "skipped": [list(t.as_tuple()) for t in skipped]}
    if as_json:
        print_json(out)
        return
    c = console()
    if new is None:
        c.print(f"Nothing to do: the changes of r{rev_id} are already undone.")
    else:
        c.print(f"[green]r{new.id}[/] {new.message} (+{new.n_added:,} / -{new.n_removed:,})")
    if skipped:
        c.print(f"[yellow]{len(skipped)} change(s) were already undone by later revisions.[/]")


@kg_app.command()
@handle_errors
def restore(rev: Annotated[str, typer.Argument(help="Revision to return to (0 = empty KG).")],
            workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Return the KG to how it was at a revision, as a new revision."""
    rev_id = _rev_arg(rev)
    with _open(workspace) as ws:
        new = ws.kg.restore(rev_id, author=ws.config.user)
    if as_json:
        print_json({"restored_to": rev_id, "revision": _rev_dict(new)})
        return
    c = console()
    c.print(f"Already at the state of r{rev_id}." if new is None else
            f"[green]r{new.id}[/] {new.message} (+{new.n_added:,} / -{new.n_removed:,})")


@kg_app.command()
@handle_errors
def validate(data: Annotated[Optional[Path], typer.Option(
                 help="Validate a data directory (schema.yaml + world/*.csv) instead of the workspace.")] = None,
             workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Check the KG against its schema: cardinality, inverses, types, references, labels, rules."""
    if data is not None:
        from controller.schema import Schema
        from controller.validate import validate as run
        from controller.world import read_world

        schema = Schema.load(data / "schema.yaml")
        world = read_world(data, schema)
        sources = {t: str(w) for t, w in world.fact_sources.items()}
        report = run(world.triples(schema), schema, sources=sources)
        where = str(data)
    else:
        with _open(workspace, write=False) as ws:
            report = ws.kg.validate()
            where = str(ws.root)
    out = report.to_dict() | {"target": where}
    if as_json:
        print_json(out)
    else:
        c = console()
        if report.ok:
            c.print(f"[green]Valid[/]: {report.checked_triples:,} triples, {report.entities:,} entities, "
                    f"{report.derived:,} derived facts ({where}).")
        else:
            from rich.table import Table

            t = Table(title=f"{len(report.violations)} violation(s) in {where}", title_justify="left")
            t.add_column("kind")
            t.add_column("where")
            t.add_column("problem")
            for v in report.violations[:200]:
                t.add_row(v.kind, v.where or "", v.message)
            c.print(t)
    if not report.ok:
        raise typer.Exit(1)


@kg_app.command("import")
@handle_errors
def import_(file: Annotated[Path, typer.Argument(help="A .ttl, .nt, .csv or .jsonl file.")],
            format: Annotated[Optional[str], typer.Option(help="ttl, nt, csv or jsonl (default: from the extension).")] = None,
            workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Import a file as one revision: all of it, or nothing if any line is bad."""
    with _open(workspace) as ws, Steps(not as_json) as step:
        step(f"Importing {file}")
        res = ws.kg.import_file(file, format, author=ws.config.user)
    out = {"file": res.file, "rows": res.rows, "added": res.added, "removed": res.removed,
           "revision": _rev_dict(res.revision)}
    if as_json:
        print_json(out)
        return
    console().print(f"Imported {res.rows:,} rows from {file}: +{res.added:,} / -{res.removed:,}"
                    + (f" as [green]r{res.revision.id}[/]" if res.revision else " (nothing new)"))


@kg_app.command()
@handle_errors
def export(format: Annotated[str, typer.Option("--format", "-f", help="ttl, nt, csv or jsonl.")] = "ttl",
           out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output file (default: stdout).")] = None,
           force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
           workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """Export the whole KG (entities and facts). The file is written whole or not at all, never
    inside the workspace, and never over an existing file without --force."""
    from oneedit.core.files import output_file

    with _open(workspace, write=False) as ws:
        if out is None:
            if as_json:
                from oneedit.core import OneEditError

                raise OneEditError("--json needs --out: the export itself goes to stdout otherwise.")
            ws.kg.export(sys.stdout.buffer, format)
            return
        with output_file(out, workspace=ws.root, force=force) as tmp:
            n = ws.kg.export(tmp, format)
    if as_json:
        print_json({"file": str(out), "format": format, "triples": n})
    else:
        console().print(f"Wrote {n:,} triples to {out}")


@kg_app.command()
@handle_errors
def synth(triples: Annotated[int, typer.Option("--triples", "-n", help="Approximate number of triples.")],
          out: Annotated[Path, typer.Option("--out", "-o", help="Output file (.nt, .ttl, .csv or .jsonl).")],
          seed: Annotated[int, typer.Option(help="Random seed (same seed, same world).")] = 0,
          as_json: JsonOpt = False) -> None:
    """Write a schema-conformant synthetic world of about N triples (for scale tests)."""
    import kg_data
    from controller.io import detect_format, write_triples
    from controller.schema import Schema
    from controller.synth import synth_world

    fmt = detect_format(out)
    schema = Schema.load(kg_data.schema_path())
    with Steps(not as_json) as step:
        step(f"Generating about {triples:,} triples")
        data = synth_world(schema, triples, seed=seed)
        step(f"Writing {out}")
        n = write_triples(data, out, fmt)
    if as_json:
        print_json({"file": str(out), "format": fmt, "triples": n, "seed": seed})
    else:
        console().print(f"Wrote {n:,} triples to {out}")


@kg_app.command()
@handle_errors
def show(entity: Annotated[str, typer.Argument(help="Entity id, label or alias.")],
         depth: Annotated[int, typer.Option(help="Neighbourhood radius in hops.")] = 1,
         workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """An entity: its names, its facts, derived facts, and its neighbourhood."""
    from controller.graph import neighbourhood

    with _open(workspace, write=False) as ws:
        kg = ws.kg
        e = kg.resolve_entity(entity)
        facts = [_triple_dict(kg, t) for t in kg.store.triples(e.id) if not t.is_meta]
        derived = [_triple_dict(kg, d.triple) | {"via": [list(v.as_tuple()) for v in d.via]}
                   for d in kg.derived(subject=e.id)]
        g = neighbourhood(kg.store, e.id, depth=depth)
        nb = sorted(n for n in g.nodes if n != e.id)
    out = {"id": e.id, "type": e.type, "label": e.label, "aliases": list(e.aliases),
           "description": e.description, "facts": facts, "derived": derived,
           "neighbourhood": {"depth": depth, "nodes": nb, "edges": g.number_of_edges()}}
    if as_json:
        print_json(out)
        return
    from rich.table import Table

    c = console()
    c.print(f"[bold]{e.label}[/] ({e.id}) — {e.type}" + (f", {e.description}" if e.description else ""))
    if e.aliases:
        c.print("Also known as: " + ", ".join(e.aliases))
    t = Table(title_justify="left")
    t.add_column("relation")
    t.add_column("object")
    t.add_column("kind")
    for f in facts:
        t.add_row(f["relation"], f"{f['object']['label']} [dim]({f['object']['id']})[/]", "stored")
    for f in derived:
        t.add_row(f["relation"], f"{f['object']['label']} [dim]({f['object']['id']})[/]", "derived")
    c.print(t)
    c.print(f"{len(nb)} entities within {depth} hop(s).")


@kg_app.command()
@handle_errors
def path(source: Annotated[str, typer.Argument(help="From this entity (id, label or alias).")],
         target: Annotated[str, typer.Argument(help="To this entity.")],
         max_hops: Annotated[int, typer.Option(help="Longest path to consider.")] = 3,
         workspace: WorkspaceOpt = None, as_json: JsonOpt = False) -> None:
    """How two entities are connected: the shortest relation paths between them."""
    from controller.graph import paths

    with _open(workspace, write=False) as ws:
        kg = ws.kg
        a, b = kg.resolve_entity(source), kg.resolve_entity(target)
        found = paths(kg.store, a.id, b.id, max_hops=max_hops)
        labels = {n: kg.label(n) for p in found for hop in p for n in (hop[0], hop[2])}
    if as_json:
        print_json({"source": a.id, "target": b.id, "paths": [[list(h) for h in p] for p in found]})
        return
    c = console()
    if not found:
        c.print(f"No path from {a.label} to {b.label} within {max_hops} hops.")
    for p in found:
        c.print(" ".join([labels[p[0][0]]] + [f"-[{r}]-> {labels[o]}" for _s, r, o in p]))


@kg_app.command()
@handle_errors
def migrate(
    to: Annotated[str, typer.Option("--to", help="Target store (neo4j).")],
    uri: Annotated[str, typer.Option("--uri", help="The Bolt URI, e.g. bolt://db:7687.")],
    db_user: Annotated[str, typer.Option("--user", help="The database user.")] = "neo4j",
    password_env: Annotated[Optional[str], typer.Option(
        "--password-env", help="Environment variable holding the password (never the password itself).")] = None,
    database: Annotated[Optional[str], typer.Option("--database", help="Database name (default: the server's).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Wipe the target database first.")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy the workspace's KG with its whole history into Neo4j and switch the workspace to it.

    Every revision keeps its id, author, time and message, so the ledger, `kg log`, `kg revert`
    and `rollback` work as before. The embedded store stays on disk untouched (as a backup)."""
    from rich.progress import Progress

    from controller.stores import open_store
    from controller.stores.neo4j import copy_history
    from oneedit.cli.options import store_config
    from oneedit.core import OneEditError
    from oneedit.workspace import Workspace

    cfg = store_config(to, uri, db_user, password_env, database)
    ws = Workspace.open(workspace)
    with ws:
        if ws.config.store.backend == to:
            raise OneEditError(f"The workspace's KG is already in {to}.")
        dst = open_store(cfg.backend, **cfg.options)
        try:
            if replace:
                dst.wipe()
            with Progress(disable=as_json, transient=True) as bar:
                task = bar.add_task("Copying revisions", total=None)
                summary = copy_history(ws.kg.store, dst, progress=lambda n, total: bar.update(task, completed=n,
                                                                                             total=total))
        finally:
            dst.close()
        previous = {"backend": ws.config.store.backend, "path": str(ws.root / "kg")}
        ws.config.store = cfg
        ws.config.save(ws.root)
    out = summary | {"to": to, "uri": uri, "previous_store": previous}
    if as_json:
        print_json(out)
        return
    console().print(f"Copied {summary['revisions']} revisions ({summary['triples']:,} triples, head "
                    f"r{summary['head']}) to {uri}; the workspace now uses it. The embedded store is kept at "
                    f"{previous['path']}.")
