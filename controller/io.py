"""Import and export formats: Turtle, N-Triples, CSV (subject,relation,object[,op]) and JSONL.

Readers return rows with their line numbers and never touch a store; ``KnowledgeGraph.import_file``
validates every row first and commits the whole file as one transaction, or nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import pyoxigraph as ox
from rdflib import RDF, RDFS, SKOS

from oneedit.core import ImportFormatError, Triple
from oneedit.core.files import input_file, read_utf8
from oneedit.core.records import csv_rows, jsonl_objects, line_error, detect_format as _detect_format
from controller.stores.embedded import TermMap

Format = Literal["ttl", "nt", "csv", "jsonl"]
FORMATS: tuple[str, ...] = ("ttl", "nt", "csv", "jsonl")
_EXT = {".ttl": "ttl", ".turtle": "ttl", ".nt": "nt", ".ntriples": "nt", ".csv": "csv",
        ".jsonl": "jsonl", ".ndjson": "jsonl"}
_OX = {"ttl": ox.RdfFormat.TURTLE, "nt": ox.RdfFormat.N_TRIPLES}
OPS = {"add": "add", "+": "add", "assert": "add", "remove": "remove", "-": "remove", "retract": "remove"}


@dataclass(frozen=True, slots=True)
class Row:
    """One statement read from a file. ``resolved`` rows carry ids; others may carry names."""

    subject: str
    relation: str
    object: str
    op: Literal["add", "remove"]
    line: int
    resolved: bool = False


def detect_format(path: str | Path, explicit: str | None = None) -> str:
    return _detect_format(path, explicit, FORMATS, _EXT)


def read_rows(path: str | Path, fmt: str | None = None, *, terms: TermMap | None = None) -> list[Row]:
    path = input_file(path)
    fmt = detect_format(path, fmt)
    if fmt in ("ttl", "nt"):
        return _read_rdf(path, fmt, terms or TermMap())
    text = read_utf8(path, _HINT)
    return _read_csv(path, text) if fmt == "csv" else _read_jsonl(path, text)


_HINT = "Fix that line and import again; nothing from this file was applied."


def _fail(path: Path, line: int, problem: str) -> ImportFormatError:
    return line_error(path, line, problem, _HINT)


def _op(path: Path, line: int, raw: str | None) -> Literal["add", "remove"]:
    op = OPS.get((raw or "add").strip().lower())
    if op is None:
        raise _fail(path, line, f"unknown op {raw!r} (use add or remove)")
    return op  # type: ignore[return-value]


def _read_csv(path: Path, text: str) -> list[Row]:
    rows: list[Row] = []
    for line, cells in csv_rows(path, text, hint=_HINT):
        if not all(cells[:3]):
            raise _fail(path, line, "subject, relation and object must not be empty")
        rows.append(Row(cells[0], cells[1], cells[2], _op(path, line, cells[3] if len(cells) == 4 else None), line))
    return rows


def _read_jsonl(path: Path, text: str) -> list[Row]:
    rows: list[Row] = []
    for line, obj in jsonl_objects(path, text, hint=_HINT):
        missing = [k for k in ("subject", "relation", "object") if not isinstance(obj.get(k), str) or not obj[k].strip()]
        if missing:
            raise _fail(path, line, f"missing or empty field(s): {', '.join(missing)}")
        rows.append(Row(obj["subject"].strip(), obj["relation"].strip(), obj["object"].strip(),
                        _op(path, line, obj.get("op")), line))
    return rows


def _read_rdf(path: Path, fmt: str, terms: TermMap) -> list[Row]:
    rows: list[Row] = []
    try:
        for i, q in enumerate(ox.parse(path=str(path), format=_OX[fmt]), start=1):
            try:
                t = terms.from_ox(q)
            except ValueError as exc:
                # N-Triples has one statement per line; for Turtle we can only say which statement.
                where = i if fmt == "nt" else None
                raise ImportFormatError(
                    f"{path.name}, {'line' if where else 'statement'} {i}: {exc}",
                    hint="Use the OneEdit namespace (see `oneedit kg export --format ttl`); nothing was applied.",
                    details={"file": str(path), "statement": i, "problem": str(exc)}) from None
            rows.append(Row(t.subject, t.relation, t.object, "add", i, resolved=True))
    except SyntaxError as exc:
        raise _fail(path, exc.lineno or 0, f"syntax error: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    return rows


# -- export ------------------------------------------------------------------------------------
def write_triples(triples: Iterable[Triple], out: IO[bytes] | str | Path, fmt: str,
                  terms: TermMap | None = None) -> int:
    """Write triples in ``fmt``; returns how many were written."""
    terms = terms or TermMap()
    fmt = detect_format("x", fmt)
    triples = list(triples)
    if fmt in ("ttl", "nt"):
        prefixes = {"e": terms.e, "r": terms.r, "t": terms.t, "rdfs": str(RDFS), "skos": str(SKOS),
                    "rdf": str(RDF)} if fmt == "ttl" else None
        data = ox.serialize((terms.ox_quad(t).triple for t in triples), format=_OX[fmt], prefixes=prefixes)
        _write_bytes(out, data)
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["subject", "relation", "object"])
        w.writerows(t.as_tuple() for t in triples)
        _write_bytes(out, buf.getvalue().encode())
    else:
        data = "".join(json.dumps({"subject": t.subject, "relation": t.relation, "object": t.object},
                                  ensure_ascii=False) + "\n" for t in triples)
        _write_bytes(out, data.encode())
    return len(triples)


def _write_bytes(out: IO[bytes] | str | Path, data: bytes) -> None:
    if isinstance(out, (str, Path)):
        Path(out).write_bytes(data)
    else:
        out.write(data)

