"""What may be written into the KG: names without control, NUL or direction-override characters,
and ids that are safe slugs (an id names files and URLs; ``../../etc/passwd`` is not one).

Checked where every write passes: the KG store's commit and bulk load, so a request, a structured
fact, an import file and a ``kg add`` are all held to the same rule.
"""

from __future__ import annotations

import re
import unicodedata

from oneedit.core.errors import InputError

#: Characters that reorder or hide text (bidirectional overrides and isolates, marks).
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: An entity or relation id: lowercase ASCII letters, digits and ``_``, starting with a letter or digit.
ID = re.compile(r"[a-z0-9][a-z0-9_]{0,199}")
#: A type name (the object of ``type``): a letter, then letters, digits and ``_``.
TYPE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}")
#: Objects that are text, not ids.
TEXT_PREDICATES = frozenset({"label", "alias", "description"})
MAX_TEXT = 1000


def unsafe_character(text: str, *, newlines: bool = False) -> str | None:
    """A description of the first character of ``text`` that must not be stored, or ``None``:
    control characters (NUL, escape; tab, CR and LF unless ``newlines``), lone surrogates and
    direction overrides."""
    for i, ch in enumerate(text):
        cat = unicodedata.category(ch)
        if ch in BIDI or cat in ("Cc", "Cs") and not (newlines and ch in "\t\n\r"):
            name = unicodedata.name(ch, "") or {"\x00": "NUL", "\x1b": "ESCAPE"}.get(ch, "a control character")
            return f"U+{ord(ch):04X} ({name}) at position {i + 1}"
    return None


def check_text(text: str, what: str, *, newlines: bool = False) -> str:
    """``text`` if it may be stored; else an :class:`InputError` naming the character."""
    bad = unsafe_character(text, newlines=newlines)
    if bad:
        raise InputError(f"The {what} {_shown(text)} contains {bad}, which cannot be stored.",
                         hint="Remove control and text-direction characters and send it again.")
    return text


def check_triple(t) -> None:
    """Raise :class:`InputError` unless ``t`` (a :class:`~oneedit.core.Triple`) may be stored."""
    if not ID.fullmatch(t.subject):
        raise InputError(f"{_shown(t.subject)} is not a valid entity id.",
                         hint="Ids are lowercase letters, digits and _ (e.g. new_york); "
                              "names go in the label.")
    if not ID.fullmatch(t.relation):
        raise InputError(f"{_shown(t.relation)} is not a valid relation id.", hint="See `oneedit kg relations`.")
    if t.relation in TEXT_PREDICATES:
        if len(t.object) > MAX_TEXT:
            raise InputError(f"The {t.relation} of {t.subject} is {len(t.object):,} characters; at most "
                             f"{MAX_TEXT:,} are stored.", hint="Shorten it.")
        # a description may run over lines; a label or an alias is one line
        check_text(t.object, f"{t.relation} of {t.subject}", newlines=t.relation == "description")
    elif t.relation == "type":
        if not TYPE.fullmatch(t.object):
            raise InputError(f"{_shown(t.object)} is not a valid type name.", hint="See `oneedit kg schema`.")
    elif not ID.fullmatch(t.object):
        raise InputError(f"{_shown(t.object)} is not a valid entity id.",
                         hint="Ids are lowercase letters, digits and _ (e.g. new_york); names go in the label.")


def _shown(text: str) -> str:
    """``text`` for a message: escaped (no control character reaches a terminal), at most 60 characters."""
    short = text if len(text) <= 60 else text[:57] + "..."
    return ascii(short) if unsafe_character(short) else repr(short)
