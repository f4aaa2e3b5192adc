"""``oneedit eval --dataset FILE`` / ``--write-dataset FILE``: the field's standard datasets
(CounterFact, zsRE), read and scored as the papers' code does, or written from the KG."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from oneedit.cli.output import Steps, console, print_json
from oneedit.core import OneEditError


def dataset_eval(m, *, method: str, edits: int | None, batch_size: int | None, seed: int,
                 dataset: Path | None, write: Path | None, fmt: str | None, sequential: bool,
                 report: Path | None) -> None:
    from editor.datasets import check_format, load

    if dataset is not None and write is not None:
        raise OneEditError("--dataset and --write-dataset cannot be used together.",
                           hint="Write the file first, then evaluate on it with --dataset.")
    if fmt is not None:
        check_format(fmt)
    if edits is not None and edits < 1:
        raise OneEditError("--edits must be at least 1.")
    if write is not None:
        if fmt is None:
            raise OneEditError("--write-dataset needs --format.", hint="Add --format counterfact or --format zsre.")
        _write(m, write, fmt, 100 if edits is None else edits, seed)
        return
    if dataset is None:
        raise OneEditError("--format needs --dataset FILE (to evaluate) or --write-dataset FILE (to write one).")
    if method not in ("memit", "grace"):
        raise OneEditError(f"Unknown method {method!r}.", hint="Use --method memit or --method grace.")
    for flag, given in (("--sequential", sequential), ("--report", report is not None)):
        if given:
            raise OneEditError(f"{flag} does not apply to --dataset.",
                               hint="A dataset is edited in batches (--batch-size) and scored after the last; "
                                    "--json prints the full result.")
    data = load(dataset, fmt, limit=edits)  # a bad file fails here, before the workspace is opened
    _evaluate(m, data, method, batch_size)


def _write(m, path: Path, fmt: str, n: int, seed: int) -> None:
    from editor.datasets import write
    from oneedit.evaluation import dataset_records
    from oneedit.workspace import Workspace

    # only the KG is read: beside any writer, without the writer lock
    with Workspace.open(m.workspace, write=False) as ws, Steps(not m.as_json) as step:
        step(f"Drawing {n} edit cases from the KG")
        records = dataset_records(ws, fmt, n, seed=seed)
    write(path, records)
    rel = Counter(getattr(r, "relation_id", "") for r in records) if fmt == "counterfact" else None
    out = {"path": str(path), "format": fmt, "records": len(records), "seed": seed}
    if rel:
        out["relations"] = dict(sorted(rel.items()))
    if m.as_json:
        print_json(out)
        return
    from rich.markup import escape

    console().print(f"Wrote {len(records)} {'CounterFact' if fmt == 'counterfact' else 'zsRE'} records to "
                    f"{escape(str(path))} (seed {seed}).", highlight=False)


def _evaluate(m, data, method: str, batch_size: int | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from editor.datasets import evaluate
    from oneedit.cli.model import _ws, open_model

    n = len(data.records)
    with _ws(m.workspace) as ws:
        with Steps(not m.as_json) as step:  # closed before the progress bar: one live display at a time
            em = open_model(ws, m.model, m.device, m.dtype, m.corpus, m.cov_samples, step=step,
                            device_map=m.device_map, max_memory=m.max_memory)
            em.persist = False  # an in-memory copy: the workspace's model and edits stay as they are
        prog = None
        if not m.as_json:
            prog = Progress(TextColumn(f"[bold]{method.upper()}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("edits"), TimeElapsedColumn(), console=console())
            prog.__enter__()
            task = prog.add_task("edits", total=n)
        try:
            result = evaluate(em, data, method=method, batch_size=batch_size,
                              progress=(lambda what, done, total: prog.update(task, completed=done)) if prog else None)
        finally:
            if prog:
                prog.__exit__(None, None, None)
    result["model"] = em.loaded.name
    if m.as_json:
        print_json(result)
    else:
        _table(result)


def _table(result: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    from editor.datasets import METRICS

    name = {"counterfact": "CounterFact", "zsre": "zsRE"}[result["format"]]
    n = result["edits"]
    t = Table(title=f"{result['method'].upper()} on {escape(result['model'])}: {n} {name} edit{'s' * (n != 1)} "
                    f"(batch {result['batch_size']}), {result['edit_seconds']:.1f} s, "
                    f"{result['edits_per_second'] or 0:.2f} edits/s", title_justify="left")
    for col in ("metric", "value", "before"):
        t.add_column(col, justify="left" if col == "metric" else "right")
    for key, label in METRICS[result["format"]]:
        t.add_row(label, _fmt(key, result["after"][key]), _fmt(key, result["before"][key]))
    c = console()
    c.print(t)
    probes = ", ".join(f"{k} {v}" for k, v in result["probes"].items())
    c.print(f"[dim]{escape(result['dataset'])}; probes: {probes}[/]", highlight=False)
    if result["unconverged_cases"]:
        c.print(f"[yellow]{len(result['unconverged_cases'])} edits did not converge[/]")


def _fmt(key: str, x) -> str:
    if x is None:
        return "–"
    return f"{x:+.3f}" if key.endswith("magnitude") else f"{x:.1%}"
