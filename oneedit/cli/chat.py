"""``oneedit chat``: a conversation with the workspace: ask, edit, undo, explain — one line at a time.

:class:`ChatSession` is the conversation logic, with no terminal: ``handle(line)`` returns the
turn's events (dicts with a ``type``) and never raises for the person's mistakes (a
``OneEditError`` becomes an ``error`` event with its message and hint). Two callbacks ask the
person when the system cannot decide alone:

* ``choose(mention, candidates)``: a name fits several entities; returns the 0-based index of the
  candidate meant, or ``None`` to cancel. With ``choose=None`` nobody can be asked: the turn ends
  with a ``choice_needed`` event listing the candidates.
* ``confirm(plan)``: the plan (a dict, see ``EditPlan.to_dict``) has conflicts; ``True`` applies it.
  Plans without conflicts are applied without asking.

Events: ``answer`` (KG and model side by side), ``plan`` and ``outcome`` (an edit), ``chosen``,
``choice_needed``, ``cancelled``, ``undone``, ``history``, ``explain``, ``info``, ``help``,
``error`` and ``bye``.

:func:`chat_command` is the terminal front end (rich prompts and tables), or with ``--json`` a
line protocol: one request per stdin line in, one ``{"input": ..., "events": [...]}`` line out.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Annotated

import typer

from oneedit.cli.edit import MethodOpt, UserOpt, _check_method, render_answers, render_outcome, render_plan, system
from oneedit.cli.options import JsonOpt, WorkspaceOpt
from oneedit.cli.output import Steps, console, json_text

EDIT_OPS = ("assert", "replace", "retract")
MAX_CHOICES = 8  # ambiguous names resolved in one turn before giving up

HELP = [
    ("/help", "this list"),
    ("/history [N]", "your latest N edits (default 10)"),
    ("/undo", "roll back your last applied edit"),
    ("/quit, /exit", "end the chat"),
]
EXAMPLES = [
    "What is the capital of Germany?",
    "The capital of Germany is Hamburg",
    "Olaf Scholz's wife is Brigitte Macron",
    "undo my last edit",
    "show the history of Germany",
    "explain edit 1",
]

ChooseFn = Callable[[str, list[dict]], "int | None"]
ConfirmFn = Callable[[dict], bool]


def _error_event(exc) -> dict:
    out = {"type": "error", "error": type(exc).__name__, "message": exc.message, "exit_code": exc.exit_code}
    if exc.hint:
        out["hint"] = exc.hint
    if exc.details:
        out["details"] = exc.details
    return out


class ChatSession:
    """The conversation logic over an open :class:`oneedit.system.OneEdit` (see the module doc)."""

    def __init__(self, oe, *, user: str | None = None, method: str | None = None,
                 choose: ChooseFn | None, confirm: ConfirmFn):
        self.oe = oe
        self.user = user or oe.user
        self.method = method
        self.choose = choose
        self.confirm = confirm
        self.done = False
        self.focus = None  # the subject and relation of the last question or edit (follow-ups)

    # -- one turn ----------------------------------------------------------------------------------
    def handle(self, line: str) -> list[dict]:
        """The events of one turn. ``OneEditError`` becomes an ``error`` event."""
        from oneedit.core import OneEditError

        line = line.strip()
        if not line:
            return []
        events: list[dict] = []
        try:
            if line.startswith("/"):
                self._command(line, events)
            else:
                self._request(line, events)
        except OneEditError as exc:
            events.append(_error_event(exc))
        return events

    # -- slash commands ------------------------------------------------------------------------------
    def _command(self, line: str, events: list[dict]) -> None:
        from oneedit.core import OneEditError

        name, *args = line.split()
        name = name.lower()
        if name in ("/quit", "/exit", "/bye"):
            self.done = True
            events.append({"type": "bye", "message": "Bye."})
        elif name in ("/help", "/?"):
            events.append({"type": "help", "commands": [{"command": c, "help": h} for c, h in HELP],
                           "examples": EXAMPLES,
                           "message": "Ask a question, state a change, or use a command."})
        elif name == "/history":
            if len(args) > 1 or (args and not (args[0].isdigit() and int(args[0]) > 0)):
                raise OneEditError(f"/history takes one positive number, not {' '.join(args)!r}.",
                                   hint="/history 5 shows your latest 5 edits.")
            self._history(int(args[0]) if args else 10, events)
        elif name == "/undo":
            if args:
                raise OneEditError("/undo takes no arguments.",
                                   hint='To undo a given edit, write e.g. "revert edit 3".')
            self._undo_last(1, events)
        else:
            raise OneEditError(f"Unknown command {name!r}.", hint="Type /help for the commands.")

    def _history(self, limit: int, events: list[dict]) -> None:
        rows = self.oe.history(user=self.user, limit=limit)
        events.append({"type": "history", "user": self.user, "edits": rows,
                       "message": f"{len(rows)} edit(s) by {self.user}" if rows else f"{self.user} has no edits yet."})

    def _undo_last(self, count: int, events: list[dict]) -> None:
        for _ in range(count):
            edit = self.oe.last_edit(self.user)
            if edit is None:
                events.append({"type": "info", "message": f"{self.user} has no applied edit to undo."})
                return
            self._undo_edit(edit, events)

    def _undo_edit(self, edit: int, events: list[dict]) -> None:
        result = self.oe.rollback(edit, user=self.user)
        events.append({"type": "undone", "edit": edit, **result})

    # -- requests in words -------------------------------------------------------------------------
    def _request(self, line: str, events: list[dict]) -> None:
        from interpreter.context import focus_of, follow_up

        followed = follow_up(line, self.focus, self.oe.kg)
        if followed is not None:
            # a turn that leans on the last one: say how it was read before anything happens
            label = self.oe.kg.label
            s = followed.subject.text if followed.subject.entity is None else label(followed.subject.entity.id)
            o = ("?" if followed.object is None else
                 followed.object.text if followed.object.entity is None else label(followed.object.entity.id))
            events.append({"type": "context", "op": followed.op, "subject": s, "relation": followed.relation,
                           "object": None if followed.object is None else o,
                           "message": f"Reading {line!r} as {followed.op} ({s}, {followed.relation}, {o})."})
            intents = [followed]
        else:
            intents = list(self.oe.parse(line).intents)
        for intent in intents:
            self.focus = focus_of(intent) or self.focus
        edits: list = []
        for intent in intents:
            if intent.op in EDIT_OPS:
                edits.append(intent)
                continue
            if edits:  # the edits before this intent, as one request
                self._submit(line, edits, events, always_confirm=followed is not None)
                edits = []
            if intent.op == "query":
                self._answer(intent, events)
            elif intent.op == "undo":
                if intent.edit is not None:
                    self._undo_edit(intent.edit, events)
                else:
                    self._undo_last(intent.count, events)
            elif intent.op == "explain":
                self._explain(intent, events)
        if edits:
            self._submit(line, edits, events, always_confirm=followed is not None)

    def _submit(self, line: str, intents: list, events: list[dict], *, always_confirm: bool = False) -> None:
        """``always_confirm``: ask before applying even without conflicts (a follow-up's reading
        was inferred from the conversation)."""
        from controller.planner import AmbiguousRequest

        asked: dict[str, bool] = {"asked": False}

        def confirm(plan) -> bool:
            if not plan.conflicts and not always_confirm:
                return True
            asked["asked"] = True
            return bool(self.confirm(plan.to_dict()))

        for _ in range(MAX_CHOICES + 1):
            try:
                out = self.oe.submit(line, intents=intents, user=self.user, method=self.method, confirm=confirm)
            except AmbiguousRequest as exc:
                intents = self._choose(intents, exc.details.get("mention"), events)
                if intents is None:
                    return
                continue
            result = out.to_dict()
            plan = result.pop("plan")
            events.append({"type": "plan", "plan": plan, "confirmed": (out.status != "cancelled")
                           if asked["asked"] else None})
            if plan:
                result |= {"decision": plan["decision"], "reasons": plan["reasons"], "refused_by": plan["refused_by"]}
            events.append({"type": "outcome", "outcome": result})
            return
        events.append({"type": "error", "error": "AmbiguousRequest", "exit_code": 1,
                       "message": f"Too many ambiguous names in {line!r}.",
                       "hint": "Name the entities by id or with more detail."})

    def _answer(self, intent, events: list[dict]) -> None:
        if intent.needs_choice:
            got = self._choose([intent], None, events)
            if got is None:
                return
            intent = got[0]
        events.append({"type": "answer", "question": intent.text, "answers": [self.oe.qa.answer(intent)]})

    def _explain(self, intent, events: list[dict]) -> None:
        from oneedit.core import OneEditError

        if intent.about == "edit" or (intent.subject is None and intent.edit is not None):
            entry = self.oe.ledger.get(intent.edit)
            if entry is None:
                raise OneEditError(f"No edit #{intent.edit} in the ledger.", hint="/history lists your edits.")
            events.append({"type": "explain", "about": "edit", "edit": entry.to_dict()})
            return
        if intent.needs_choice:
            got = self._choose([intent], None, events)
            if got is None:
                return
            intent = got[0]
        subject = intent.subject
        if subject is None or subject.entity is None:
            name = subject.text if subject is not None else "that"
            raise OneEditError(f"{name!r} is not in the KG, so it has no history.",
                               hint="Check the name, e.g. ask a question about it first.")
        entity = subject.entity
        rows = self.oe.history(entity=entity.id, limit=20)
        relevant = [r for r in rows if any(f.get("relation") == intent.relation
                                           for f in _plan_facts(r.get("plan") or {}))]
        if intent.about == "history" or intent.relation is None:
            what = entity.label if intent.relation is None else f"{entity.label}'s {intent.relation}"
            rows = rows if intent.relation is None else relevant
            event = {"type": "history", "entity": {"id": entity.id, "label": entity.label}, "edits": rows,
                     "message": f"{len(rows)} edit(s) touch {what}" if rows
                     else f"No edit has touched {what}: it is as the KG was loaded."}
            if intent.relation is not None:
                event["relation"] = intent.relation
            events.append(event)
            return
        # why the KG holds a fact / why the model says it: the edits behind it and both answers now
        answer = self.oe.qa.answer(replace(intent, op="query", object=None, about=None))
        event = {"type": "explain", "about": intent.about or "fact", "entity": {"id": entity.id, "label": entity.label},
                 "relation": intent.relation, "answer": answer, "edits": relevant}
        event["message"] = (f"{len(relevant)} edit(s) changed {entity.label}'s {intent.relation}" if relevant
                            else f"No edit changed {entity.label}'s {intent.relation}: it comes from the loaded KG.")
        events.append(event)

    # -- ambiguity -----------------------------------------------------------------------------------
    def _choose(self, intents: Sequence, text: str | None, events: list[dict]) -> list | None:
        """Ask which entity the first ambiguous mention (named ``text``, if given) means, and link
        every ambiguous mention of that name to it. ``None``: cancelled, or nobody to ask."""
        from oneedit.core import Mention, OneEditError
        from oneedit.core.intents import candidate_dict

        found = None
        for intent in intents:
            for role, m in intent.mentions().items():
                if m.status == "ambiguous" and (text is None or m.text == text):
                    found = (role, m)
                    break
            if found:
                break
        if found is None:
            raise OneEditError(f"{text!r} is ambiguous, but no candidates were found for it.",
                               hint="Name it by id or with more detail.")
        role, mention = found
        candidates = [candidate_dict(c) for c in mention.candidates]
        if self.choose is None:
            events.append({"type": "choice_needed", "mention": mention.text, "role": role, "candidates": candidates,
                           "message": f"{mention.text!r} could be several entities.",
                           "hint": "Say it again with the full name or the id of the one you mean."})
            return None
        picked = self.choose(mention.text, candidates)
        if picked is None:
            events.append({"type": "cancelled", "message": f"Cancelled: {mention.text!r} was not chosen."})
            return None
        if not 0 <= picked < len(mention.candidates):
            raise OneEditError(f"There is no candidate {picked + 1} for {mention.text!r}.",
                               hint=f"Choose 1 to {len(mention.candidates)}.")
        entity = mention.candidates[picked].entity
        linked = Mention(entity.label, entity=entity, confidence=1.0)
        events.append({"type": "chosen", "mention": mention.text, "role": role,
                       "entity": {"id": entity.id, "label": entity.label, "type": entity.type}})

        def swap(m):
            return linked if m is not None and m.status == "ambiguous" and m.text == mention.text else m

        return [replace(i, subject=swap(i.subject), object=swap(i.object)) for i in intents]


def _plan_facts(plan: dict) -> list[dict]:
    diff = plan.get("kg_diff") or {}
    return [*plan.get("requested", []), *diff.get("added", []), *diff.get("removed", [])]


# -- the terminal ----------------------------------------------------------------------------------------
def render_events(c, oe, events: list[dict], *, plan_shown: bool = False, interactive: bool = False) -> None:
    """Print one turn's events for a person (``plan_shown``: the conflict prompt showed the plan;
    ``interactive``: the choice prompt already said which entity was chosen)."""
    from rich.markup import escape

    for ev in events:
        kind = ev["type"]
        if kind == "context":
            c.print(f"[dim]{escape(ev['message'])}[/]")
        elif kind == "answer":
            render_answers(c, ev["answers"])
        elif kind == "plan":
            if ev["plan"] and not plan_shown:
                render_plan(c, oe, ev["plan"])
        elif kind == "outcome":
            out = ev["outcome"]
            render_outcome(c, oe, out | {"plan": {"reasons": out.get("reasons") or []}})
        elif kind == "chosen":
            if interactive:
                continue
            e = ev["entity"]
            c.print(f"Using [bold]{escape(e['label'])}[/] ({e['id']}) for {escape(ev['mention'])!r}.")
        elif kind == "choice_needed":
            c.print(f"[yellow]{escape(ev['message'])}[/]")
            for n, cand in enumerate(ev["candidates"], 1):
                c.print(f"  {n}. {_candidate_line(cand)}")
            c.print(f"[dim]{escape(ev['hint'])}[/]")
        elif kind == "undone":
            c.print("[green]Rolled back[/] " + ", ".join(f"#{e}" for e in ev["rolled_back"]) + ".")
        elif kind in ("history", "explain"):
            _render_history(c, ev)
        elif kind == "help":
            c.print(escape(ev["message"]))
            for cmd in ev["commands"]:
                c.print(f"  [bold]{escape(cmd['command'])}[/]  {escape(cmd['help'])}")
            c.print("Examples: " + "; ".join(f"[italic]{escape(x)}[/]" for x in ev["examples"]))
        elif kind == "error":
            c.print(f"[bold red]Error:[/] {escape(ev['message'])}")
            if ev.get("hint"):
                c.print(f"[yellow]Hint:[/] {escape(ev['hint'])}")
        elif kind in ("info", "cancelled", "bye"):
            c.print(f"[yellow]{escape(ev['message'])}[/]" if kind == "cancelled" else escape(ev["message"]))


def _candidate_line(cand: dict) -> str:
    from rich.markup import escape

    line = f"[bold]{escape(cand['label'])}[/] ({cand['id']}, {cand['type']})"
    return line + (f" — {escape(cand['description'])}" if cand.get("description") else "")


def _render_history(c, ev: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    if ev.get("about") == "edit":
        e = ev["edit"]
        c.print(f"Edit #{e['id']} by {escape(e['author'])} ({e['created'][:19].replace('T', ' ')}): "
                f"[bold]{e['status']}[/] — {escape(e['text'])}")
        plan = e.get("plan") or {}
        if plan.get("reasons"):
            c.print("  " + escape("; ".join(plan["reasons"])))
        return
    if ev.get("answer"):
        render_answers(c, [ev["answer"]])
    c.print(escape(ev["message"]))
    if not ev["edits"]:
        return
    t = Table(title_justify="left")
    for col in ("id", "when", "author", "status", "request"):
        t.add_column(col)
    colour = {"applied": "green", "rejected": "red", "needs_review": "magenta", "rolled_back": "yellow",
              "failed": "red"}
    for r in ev["edits"]:
        t.add_row(str(r["id"]), r["created"][:19].replace("T", " "), escape(r["author"]),
                  f"[{colour.get(r['status'], 'white')}]{r['status']}[/]", escape(r["text"]))
    c.print(t)


def chat_command(
    user: UserOpt = None,
    method: MethodOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --json: apply edits whose plan has conflicts "
                                      "(otherwise they are cancelled).")] = False,
    workspace: WorkspaceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Talk to the workspace: ask questions, state changes (with their plan and conflicts), undo,
    see history. With --json: one request per stdin line, one JSON object per line out."""
    _check_method(method)
    if as_json:
        _json_loop(workspace, user, method, yes)
    else:
        _terminal_loop(workspace, user, method)


def _json_loop(workspace, user, method, yes: bool) -> None:
    with system(workspace, True, user) as (oe, _):
        session = ChatSession(oe, user=user, method=method, choose=None, confirm=lambda plan: yes)
        while not session.done:
            line = sys.stdin.readline()
            if not line:  # EOF
                break
            line = line.strip()
            if not line:
                continue
            events = session.handle(line)
            for ev in events:
                if ev["type"] == "outcome" and ev["outcome"]["status"] == "cancelled" and not yes:
                    ev["outcome"]["hint"] = "The plan has conflicts; run the chat with --yes to apply such edits."
            sys.stdout.write(json_text({"input": line, "events": events}, indent=None) + "\n")
            sys.stdout.flush()


def _terminal_loop(workspace, user, method) -> None:
    from rich.markup import escape
    from rich.prompt import Confirm, Prompt

    class _Input(Prompt):
        prompt_suffix = " "

    c = console()
    with system(workspace, False, user) as (oe, step):
        step.stop()
        state = {"plan_shown": False, "spinner": None}

        def pause() -> None:
            if state["spinner"] is not None:
                state["spinner"].stop()

        def choose(mention: str, candidates: list[dict]) -> int | None:
            pause()
            c.print(f"[yellow]{escape(mention)!r} could be several entities:[/]")
            for n, cand in enumerate(candidates, 1):
                c.print(f"  {n}. {_candidate_line(cand)}")
            try:
                got = Prompt.ask("Which one? (0 to cancel)", choices=[str(n) for n in range(len(candidates) + 1)],
                                 default="1", console=c, show_choices=False)
            except EOFError:
                return None
            if got == "0":
                return None
            pick = candidates[int(got) - 1]
            c.print(f"Using [bold]{escape(pick['label'])}[/] ({pick['id']}).")
            return int(got) - 1

        def confirm(plan: dict) -> bool:
            pause()
            render_plan(c, oe, plan)
            state["plan_shown"] = True
            try:
                return Confirm.ask("The plan has conflicts. Apply this edit?", default=True, console=c)
            except EOFError:
                return False

        session = ChatSession(oe, user=user, method=method, choose=choose, confirm=confirm)
        c.print(f"OneEdit chat as [bold]{escape(session.user)}[/] — ask a question or state a change; "
                "[bold]/help[/] lists the commands, [bold]/quit[/] ends.")
        while not session.done:
            try:
                line = _Input.ask("[bold cyan]you>[/]", console=c)
            except (EOFError, KeyboardInterrupt):
                c.print()
                break
            state["plan_shown"] = False
            with Steps(True) as spinner:
                spinner("Thinking…")
                state["spinner"] = spinner
                events = session.handle(line)
                state["spinner"] = None
            render_events(c, oe, events, plan_shown=state["plan_shown"], interactive=True)
