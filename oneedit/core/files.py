"""Writing a file the user named: never inside the workspace, never over a file without
``--force``, and never half-written (a full disk leaves the old file, or none)."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from oneedit.core.errors import InputError, OneEditError


@contextmanager
def output_file(path: str | Path, *, workspace: Path | None = None, force: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends without an error it
    replaces ``path`` (atomically). Refused before anything is written: a path inside
    ``workspace``, a folder, a missing folder, an existing file without ``force``."""
    path = Path(path).expanduser()
    target = path.resolve()
    if workspace is not None:
        root = Path(workspace).resolve()
        if target == root or root in target.parents:
            raise InputError(f"{path} is inside the workspace ({root}); OneEdit keeps its own files there.",
                             hint="Write the export somewhere else, e.g. --out ./kg.ttl.")
    if target.is_dir():
        raise InputError(f"{path} is a folder.", hint=f"Name a file in it, e.g. --out {path / 'kg.ttl'}.")
    if not target.parent.is_dir():
        raise InputError(f"The folder {path.parent} does not exist.", hint="Create it first, or name another.")
    if target.exists() and not force:
        raise InputError(f"{path} exists.", hint="Pass --force to replace it, or name another file.")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise _os_error(exc, path) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except OSError as exc:
        raise _os_error(exc, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _os_error(exc: OSError, path: Path) -> OneEditError:
    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EACCES: "permission denied", errno.EROFS: "the file system is read-only",
           errno.EPERM: "permission denied"}.get(exc.errno, exc.strerror or str(exc))
    return OneEditError(f"Could not write {path}: {why}. Nothing was written.",
                        hint="Free some space or choose another place, and run it again.")


def input_file(path: str | Path) -> Path:
    """``path`` if it is a file that can be read; else an :class:`ImportFormatError` saying what it is."""
    from oneedit.core.errors import ImportFormatError

    path = Path(path)
    try:
        path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ImportFormatError(f"{path} is a symbolic link to {os.readlink(path)}, which does not exist.") from None
        raise ImportFormatError(f"File not found: {path}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ImportFormatError(f"{path} is a symbolic link that points back to itself (a loop).",
                                    hint="Name the file itself.") from None
        raise ImportFormatError(f"Cannot read {path}: {exc.strerror}.") from None
    if path.is_dir():
        raise ImportFormatError(f"{path} is a folder, not a file.", hint="Name a file in it.")
    if not path.is_file():
        raise ImportFormatError(f"{path} is not a regular file.", hint="Name a file.")
    if not os.access(path, os.R_OK):
        raise ImportFormatError(f"Cannot read {path}: permission denied.")
    return path


def read_utf8(path: Path, hint: str) -> str:
    """The text of ``path``; an :class:`ImportFormatError` naming the line where it is not UTF-8."""
    from oneedit.core.errors import ImportFormatError

    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ImportFormatError(f"{path.name}, line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02X}).",
                                hint="Save the file as UTF-8. " + hint,
                                details={"file": str(path), "line": line, "problem": "not valid UTF-8"}) from None
