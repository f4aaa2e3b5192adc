"""Batch requests from files: CSV, JSONL, Turtle, N-Triples and plain text, each with its line.

Readers only read: each yields ``Request`` records (a sentence, or named parts) with the file and
line they came from; ``Interpreter.parse_file`` turns them into intents. CSV rows are
``subject,relation,object[,op]`` (a header row is optional); JSONL lines are
``{"subject", "relation", "object", "op"}`` or ``{"text"}``; RDF statements assert their triple
(IRIs in the workspace's namespace are ids, others give their local name, ``rdfs:label`` names
new entities); a text file has one request per line (``#`` starts a comment line).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from oneedit.core import ImportFormatError, SourceLine
from oneedit.core.files import input_file
from oneedit.core.records import csv_rows, jsonl_objects, line_error, detect_format as _detect_format

FORMATS = ("csv", "jsonl", "ttl", "nt", "txt")
_EXT = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".ttl": "ttl", ".turtle": "ttl",
        ".nt": "nt", ".ntriples": "nt", ".txt": "txt", ".text": "txt"}
#: A batch file larger than this is refused before reading (one request is at most 10,000 chars).
MAX_FILE_BYTES = 50_000_000

_RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
_SKOS_PREF = "http://www.w3.org/2004/02/skos/core#prefLabel"
_RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
_META = {_RDFS_LABEL, _SKOS_PREF, _RDF_TYPE, "http://www.w3.org/2004/02/skos/core#altLabel",
         "http://www.w3.org/2000/01/rdf-schema#comment"}


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a batch file: ``text`` to parse, or ``subject``/``relation``/``object``."""

    source: SourceLine
    text: str | None = None
    subject: str | None = None
    relation: str | None = None
    object: str | None = None
    op: str | None = None
    new_types: tuple[tuple[str, str], ...] = ()  # (name, type) declared in the file (RDF)


def detect_format(path: str | Path, explicit: str | None = None) -> str:
    return _detect_format(path, explicit, FORMATS, _EXT)


_HINT = "Fix that line and try again; nothing from this file was used."


def _fail(path: Path, line: int, problem: str) -> ImportFormatError:
    return line_error(path, line, problem, _HINT)


def read_requests(path: str | Path, fmt: str | None = None, *, namespace: str = "urn:oneedit:") -> list[Request]:
    """Every request of a batch file, in order. Raises ``ImportFormatError`` naming the line."""
    path = input_file(path)
    fmt = detect_format(path, fmt)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ImportFormatError(f"{path.name} is {size:,} bytes; the limit is {MAX_FILE_BYTES:,}.",
                                hint="Split the file.")
    if fmt in ("ttl", "nt"):
        return _read_rdf(path, fmt, namespace)
    data = path.read_bytes()
    if b"\x00" in data:
        raise ImportFormatError(f"{path.name} contains NUL bytes: it looks binary, not {fmt}.",
                                hint="Pass a UTF-8 text file; nothing from this file was used.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise _fail(path, line, "not valid UTF-8") from None
    if fmt == "csv":
        return _read_csv(path, text)
    if fmt == "jsonl":
        return _read_jsonl(path, text)
    return _read_txt(path, text)


def _read_txt(path: Path, text: str) -> list[Request]:
    out = []
    for line, raw in enumerate(text.splitlines(), start=1):
        s = raw.strip()
        if s and not s.startswith("#"):
            out.append(Request(SourceLine(str(path), line), text=s))
    return out


def _read_csv(path: Path, text: str) -> list[Request]:
    out: list[Request] = []
    for line, cells in csv_rows(path, text, hint=_HINT):
        op = cells[3] if len(cells) == 4 and cells[3] else None
        if not cells[0] or not cells[1] or (not cells[2] and (op or "assert") not in ("retract", "remove", "delete", "-", "query")):
            raise _fail(path, line, "subject, relation and object must not be empty")
        out.append(Request(SourceLine(str(path), line), subject=cells[0], relation=cells[1],
                           object=cells[2] or None, op=op))
    return out


def _read_jsonl(path: Path, text: str) -> list[Request]:
    out: list[Request] = []
    for line, obj in jsonl_objects(path, text, hint=_HINT):
        src = SourceLine(str(path), line)
        if "text" in obj:
            extra = set(obj) - {"text", "id", "note"}
            if not isinstance(obj["text"], str) or extra:
                raise _fail(path, line, "a text request is {\"text\": \"...\"} with a string and nothing "
                                        "else but an optional id or note")
            out.append(Request(src, text=obj["text"]))
            continue
        unknown = set(obj) - {"subject", "relation", "object", "op", "id", "note"}
        if unknown:
            raise _fail(path, line, f"unknown field(s): {', '.join(sorted(unknown))}")
        for k in ("subject", "relation", "object", "op"):
            if k in obj and obj[k] is not None and not isinstance(obj[k], str):
                raise _fail(path, line, f"{k} must be a string")
        if not (obj.get("subject") or "").strip() or not (obj.get("relation") or "").strip():
            raise _fail(path, line, "missing or empty field(s): subject, relation (or give \"text\")")
        out.append(Request(src, subject=obj["subject"].strip(), relation=obj["relation"].strip(),
                           object=(obj.get("object") or "").strip() or None, op=obj.get("op")))
    return out


class _LineReader(io.RawIOBase):
    """Feeds a parser one line per read, so the line count says where each statement ended."""

    def __init__(self, data: bytes):
        self._lines = data.splitlines(keepends=True)
        self.line = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.line >= len(self._lines):
            return 0
        chunk = self._lines[self.line]
        if len(chunk) > len(buf):  # a very long line: hand it over in pieces
            buf[:] = chunk[:len(buf)]
            self._lines[self.line] = chunk[len(buf):]
            return len(buf)
        self.line += 1
        buf[:len(chunk)] = chunk
        return len(chunk)


def _local(iri: str, namespace: str) -> tuple[str, bool]:
    """``(name, is_an_id)`` of an IRI: our entity/relation ids, else the IRI's local name."""
    for prefix in (namespace + "e:", namespace + "r:"):
        if iri.startswith(prefix):
            return iri[len(prefix):], True
    tail = iri.rstrip("/#")
    for sep in ("#", "/", ":"):
        if sep in tail:
            tail = tail.rsplit(sep, 1)[1]
    from urllib.parse import unquote

    return unquote(tail).replace("_", " "), False


def _read_rdf(path: Path, fmt: str, namespace: str) -> list[Request]:
    import pyoxigraph as ox

    reader = _LineReader(path.read_bytes())
    quads = []
    try:
        for q in ox.parse(reader, format=ox.RdfFormat.TURTLE if fmt == "ttl" else ox.RdfFormat.N_TRIPLES):
            quads.append((q, reader.line))
    except SyntaxError as exc:
        raise _fail(path, getattr(exc, "lineno", None) or reader.line, f"syntax error: {exc}") from None
    labels: dict[str, str] = {}
    types: dict[str, str] = {}
    for q, _line in quads:
        p = q.predicate.value
        if p in (_RDFS_LABEL, _SKOS_PREF) and isinstance(q.object, ox.Literal):
            labels.setdefault(q.subject.value, q.object.value)
        elif p == _RDF_TYPE and isinstance(q.object, ox.NamedNode):
            types[q.subject.value] = _local(q.object.value, namespace)[0].replace(" ", "_")
    out: list[Request] = []
    for q, line in quads:
        p = q.predicate.value
        if p in _META:
            continue
        if isinstance(q.subject, ox.BlankNode) or isinstance(q.object, ox.BlankNode):
            raise _fail(path, line, "blank nodes cannot name entities; use IRIs")
        names, declared = [], []
        for term in (q.subject, q.object):
            if isinstance(term, ox.Literal):
                names.append(term.value)
                continue
            iri = term.value
            local, is_id = _local(iri, namespace)
            name = labels.get(iri, local)
            names.append(local if is_id and iri not in labels else name)
            if iri in types:
                declared.append((name, types[iri]))
        relation = _local(p, namespace)[0]
        out.append(Request(SourceLine(str(path), line), subject=names[0], relation=relation,
                           object=names[1], op="assert", new_types=tuple(declared)))
    return out
