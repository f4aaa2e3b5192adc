"""``oneedit parse``: what the interpreter makes of a request. Reads the KG, changes nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from oneedit.cli.options import JsonOpt, WorkspaceOpt
from oneedit.cli.output import console, print_json


def parse_command(
    text: Annotated[Optional[str], typer.Argument(
        help='The request, e.g. "Lyon is now the capital of France" ("-" reads standard input).')] = None,
    file: Annotated[Optional[Path], typer.Option(
        "--file", "-f", help="Parse a batch file instead: .csv (subject,relation,object[,op]), "
                             ".jsonl, .ttl, .nt or .txt (one request per line).")] = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", help="Format of --file when its extension does not say: csv, jsonl, ttl, nt, txt.")] = None,
    llm: Annotated[Optional[str], typer.Option(
        "--llm", help="Parse with a chat model, PROVIDER:MODEL (openai:gpt-4o-mini, anthropic:…, "
                      "ollama:llama3.1, …); needs the provider's langchain package.")] = None,
    base_url: Annotated[Optional[str], typer.Option(
        "--base-url", help="With --llm: the server to use, e.g. an OpenAI-compatible local one "
                           "(llama.cpp, vLLM, Ollama): --llm openai:MODEL --base-url http://127.0.0.1:8080/v1")] = None,
    llm_timeout: Annotated[float, typer.Option(
        "--llm-timeout", min=0.1, help="With --llm: seconds one call to the model may take.")] = 60.0,
    llm_fallback: Annotated[bool, typer.Option(
        "--llm-fallback", help="With --llm: the rule parser first, the model only for requests it "
                               "cannot read.")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Parse a request into edit intents: operation, triple, linked entities with confidence, and
    candidates to choose from. Nothing is changed."""
    from interpreter import Interpreter
    from oneedit.core import InputError
    from oneedit.workspace import Workspace

    if (text is None) == (file is None):
        raise InputError("Give either a request or --file FILE (not both, not neither).",
                         hint='oneedit parse "Lyon is now the capital of France"')
    if text == "-":
        text = sys.stdin.read()
    model = None
    if llm:
        from interpreter.llm import chat_model_from_spec

        model = chat_model_from_spec(llm, base_url=base_url, timeout=llm_timeout)
    elif llm_fallback or base_url:
        raise InputError("--llm-fallback and --base-url need --llm PROVIDER:MODEL.")
    with Workspace.open(workspace, write=False) as ws:
        interp = Interpreter.from_kg(ws.kg, llm=model, mode=("fallback" if llm_fallback else "llm") if model else "rules")
        results = interp.parse_file(file, fmt) if file is not None else [interp.parse(text or "")]
    if as_json:
        if file is None:
            print_json(results[0].to_dict())
        else:
            print_json({"file": str(file), "requests": len(results),
                        "intents": [i.to_dict() for r in results for i in r.intents],
                        "notes": [{"line": r.source.line if r.source else None, "note": n}
                                  for r in results for n in r.notes]})
        return
    _print(results, file is not None)


def _entity_cell(m) -> str:
    from rich.markup import escape

    if m is None:
        return "[dim]?[/]"
    if m.status == "linked":
        return f"{escape(m.entity.label)} [dim]({m.entity.id})[/]"
    if m.status == "new":
        return f"[yellow]new {m.new_type}:[/] {escape(m.text)}"
    return f"[magenta]{escape(m.text)}?[/] [dim]({len(m.candidates)} candidates)[/]"


def _print(results, batch: bool) -> None:
    from rich.markup import escape
    from rich.table import Table

    c = console()
    t = Table(title_justify="left", title=f"{sum(len(r.intents) for r in results)} intent(s)")
    for col in (["line"] if batch else []) + ["op", "subject", "relation", "object", "confidence"]:
        t.add_column(col)
    extra: list[str] = []
    for r in results:
        for i in r.intents:
            if i.op == "undo":
                what = f"edit {i.edit}" if i.edit is not None else f"last {i.count} edit(s)"
                row = ["undo", what, "", "", f"{i.confidence:.2f}"]
            else:
                op = i.op if i.op != "explain" else f"explain ({i.about})"
                subj = _entity_cell(i.subject) if (i.subject or i.relation) else ""
                if i.op == "explain" and i.edit is not None:
                    subj = f"edit {i.edit}"
                row = [op, subj, i.relation or "", _entity_cell(i.object) if (i.object or i.relation) else "",
                       f"{i.confidence:.2f}"]
            if batch:
                row.insert(0, str(i.source.line) if i.source else "")
            t.add_row(*row)
            for role, m in i.mentions().items():
                if m.candidates:
                    opts = ", ".join(f"{escape(x.entity.label)} ({x.entity.id}"
                                     + (f", {escape(x.entity.description)}" if x.entity.description else "")
                                     + f", {x.score:.2f})" for x in m.candidates)
                    extra.append(f"[magenta]Choose[/] the {role} {escape(m.text)!r}: {opts}"
                                 + (f", or a new {m.new_type}" if m.new_type else "") + ".")
            for n in i.notes:
                extra.append(f"[dim]Note:[/] {escape(n)}")
        for n in r.notes:
            where = f"line {r.source.line}: " if batch and r.source else ""
            extra.append(f"[yellow]Not understood:[/] {where}{escape(n)}")
    c.print(t)
    for line in extra:
        c.print(line, highlight=False)
