"""``oneedit demo``: the README's first command — set up the embedded default and take a tour.

The tour edits the KG and the model through the same facade as ``oneedit edit``: a change with a
conflict and an inverse fact, a change with multi-hop consequences, a toxic edit that is refused,
questions answered by the KG and the model side by side, and rollbacks. It rolls back its own
edits at the end, so it can be run again and leaves the workspace as it found it.
"""

from __future__ import annotations

from oneedit.cli.output import Steps, console

TOUR_EDITS = (
    ("The capital of France is Lyon", "a functional fact: the old capital conflicts and is replaced; "
                                      "the inverse fact (Lyon is the capital of France) follows"),
    ("Albert Einstein was born in Paris", "a multi-hop consequence: his birth country follows by the rule "
                                          "birth_country = born_in ∘ located_in"),
    ("Apple's CEO is Asshole Jones", "abusive language: refused by the toxicity check, nothing changes"),
)
TOUR_QUESTIONS = ("What is the capital of France?", "Which country has Lyon as capital?",
                  "Which country was Albert Einstein born in?")
#: Facts sampled by the tour's model audits (before the edits, after them, after the rollbacks);
#: the edited facts are always in it.
AUDIT_SAMPLE = 200


def run_tour(ws, *, as_json: bool, with_model: bool) -> dict:
    from oneedit.system import OneEdit

    oe = OneEdit(ws, load_model=with_model)
    oe.recover_if_writer()
    c = None if as_json else console()
    tour: dict = {"edits": [], "questions_after": [], "rollbacks": [], "questions_after_rollback": []}
    if c:
        from rich.rule import Rule

        c.print(Rule("[bold]Tour: editing the KG and the model together"))
    audits: list[dict] = []
    if with_model:
        _audit(oe, c, audits, "before the edits")
    applied = []
    for text, why in TOUR_EDITS:
        with Steps(c is not None) as step:
            step(f"Editing: {text}" + (" (interpret → check → KG → MEMIT)" if with_model else ""))
            out = oe.submit(text, method="memit")
        d = out.to_dict()
        tour["edits"].append({"why": why, **d})
        if out.status == "applied":
            applied.append(out.edit)
        if c:
            from oneedit.cli.edit import render_outcome, render_plan

            c.print(f"\n[bold cyan]»[/] oneedit edit [bold]{text!r}[/]   [dim]({why})[/]")
            render_plan(c, oe, d["plan"])
            render_outcome(c, oe, d)
    tour["questions_after"] = _ask(oe, c, "The KG and the model after the edits")
    if with_model:
        _audit(oe, c, audits, "after the edits")
    for edit_id in reversed(applied):
        with Steps(c is not None) as step:
            step(f"Rolling back edit #{edit_id}")
            result = oe.rollback(edit_id)
        tour["rollbacks"].append(result)
        if c:
            c.print(f"[bold cyan]»[/] oneedit rollback {edit_id}: [green]rolled back[/] on both sides")
    tour["questions_after_rollback"] = _ask(oe, c, "After the rollbacks")
    if with_model:
        _audit(oe, c, audits, "after the rollbacks")
        tour["audits"] = audits
        if c:
            c.print(_audit_table(audits))
    if c:
        from oneedit.cli.edit import history_table

        c.print(history_table(oe, oe.history(limit=len(TOUR_EDITS))))
        c.print("Try next: [bold]oneedit chat[/] (edit and ask in plain language), [bold]oneedit edit \"…\"[/], "
                "[bold]oneedit ask \"…\"[/], [bold]oneedit history[/], [bold]oneedit model audit[/] (the model "
                "against the whole KG), [bold]oneedit serve[/] (the web page for a team).")
    oe.users.close()
    oe.protected.close()
    return tour


def _ask(oe, c, title: str) -> list[dict]:
    answers = [a for q in TOUR_QUESTIONS for a in oe.ask(q)]
    if c:
        from oneedit.cli.edit import render_answers

        c.print(f"\n[bold]{title}[/]")
        render_answers(c, answers)
    return answers


def _audit(oe, c, audits: list[dict], when: str) -> None:
    with Steps(c is not None) as step:
        step(f"Auditing the model against the KG ({AUDIT_SAMPLE} facts and every edited one), {when}")
        a = oe.sync.audit(sample=AUDIT_SAMPLE)
    audits.append({"when": when, "unedited": a["unedited"]["agreement"], "edited": a["edited"]["agreement"],
                   "edited_facts": a["edited"]["facts"], "heldout": a["all"]["heldout_agreement"],
                   "facts": a["all"]["facts"]})


def _audit_table(audits: list[dict]):
    from rich.table import Table

    t = Table(title="The model audited against the KG (share of prompts it answers as the KG does)",
              title_justify="left")
    for col in ("when", "facts", "unedited facts", "edited facts", "held-out phrasings"):
        t.add_column(col, justify="left" if col == "when" else "right")

    def pct(x) -> str:
        return "—" if x is None else f"{x:.1%}"

    for a in audits:
        t.add_row(a["when"], str(a["facts"]), pct(a["unedited"]),
                  f"{pct(a['edited'])} ({a['edited_facts']})" if a["edited_facts"] else "—", pct(a["heldout"]))
    return t
