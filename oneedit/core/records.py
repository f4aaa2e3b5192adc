"""Line-numbered records of the batch formats (CSV triples, JSONL objects), shared by the KG
importer (``controller.io``) and the request reader (``interpreter.batch``).

They settle what both formats mean at the record level — blank and ``#`` lines skipped, an
optional ``subject,relation,object`` header, 3 or 4 CSV columns, one JSON object per line — and
raise :class:`ImportFormatError` naming the file and line. What a record's fields mean is up to
the caller.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from oneedit.core.errors import ImportFormatError


def detect_format(path: str | Path, explicit: str | None, formats: tuple[str, ...],
                  extensions: dict[str, str]) -> str:
    """The format named by ``explicit`` (checked against ``formats``) or by the file's extension."""
    if explicit:
        if explicit not in formats:
            raise ImportFormatError(f"Unknown format {explicit!r}.", hint=f"Use one of: {', '.join(formats)}.")
        return explicit
    fmt = extensions.get(Path(path).suffix.lower())
    if fmt is None:
        names = ", ".join(f"*.{f}" for f in formats)
        raise ImportFormatError(f"Cannot tell the format of {path} from its extension.",
                                hint=f"Name it {names}, or pass --format.")
    return fmt


def line_error(path: Path, line: int, problem: str, hint: str) -> ImportFormatError:
    return ImportFormatError(f"{path.name}, line {line}: {problem}", hint=hint,
                             details={"file": str(path), "line": line, "problem": problem})


def csv_rows(path: Path, text: str, *, hint: str) -> Iterator[tuple[int, list[str]]]:
    """``(line, cells)`` per data row: cells stripped, 3 or 4 of them."""
    reader = csv.reader(io.StringIO(text))
    for rec in reader:
        line = reader.line_num
        cells = [c.strip() for c in rec]
        if not cells or all(not c for c in cells) or cells[0].startswith("#"):
            continue
        if line == 1 and [c.lower() for c in cells[:3]] == ["subject", "relation", "object"]:
            continue
        if len(cells) not in (3, 4):
            raise line_error(path, line, f"expected 3 or 4 columns (subject,relation,object[,op]), got {len(cells)}",
                             hint)
        yield line, cells


def jsonl_objects(path: Path, text: str, *, hint: str) -> Iterator[tuple[int, dict]]:
    """``(line, object)`` per non-blank line; anything but a JSON object is an error."""
    for line, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise line_error(path, line, f"invalid JSON ({exc.msg} at column {exc.colno})", hint) from None
        if not isinstance(obj, dict):
            raise line_error(path, line, "expected a JSON object", hint)
        yield line, obj
