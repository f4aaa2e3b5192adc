"""Request text: checking it, and splitting it into tokens that remember where they came from.

Every token keeps its character span in the original text, so a slot of a pattern (a run of
tokens) maps back to the name exactly as the person wrote it. Tokens carry a normalised form
(case- and accent-folded) and a Snowball stem, so "founded", "founds" and "found" or "works for"
and "worked for" meet the same schema phrase; Snowball (the ``snowballstemmer`` package, the
reference implementation that Sphinx and Lucene-style tools use) does this better than any
suffix list we would write.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from oneedit.core import InputError

#: Longest request the parser accepts; a batch file has this limit per line, not in total.
MAX_CHARS = 10_000

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201b": "'", "\u2032": "'", "`": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"'})
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
# A quoted name: "…" always; '…' only when the quotes are not apostrophes inside words.
_QUOTED = re.compile(r'"([^"\n]{1,200})"|(?<![\w\'])\'([^\'\n]{1,200})\'(?![\w\'])')
_WORD = re.compile(r"#?\w+(?:[-.&'/]\w+)*\.?|(?<!\w)'[sS]\b|\?|!|;|,|:")
_POSSESSIVE = re.compile(r"^(?P<base>.*\w)'s$", re.I)

#: Contractions spelled out; each part keeps the span of the whole word.
CONTRACTIONS: dict[str, tuple[str, ...]] = {
    "isn't": ("is", "not"), "aren't": ("are", "not"), "wasn't": ("was", "not"),
    "weren't": ("were", "not"), "doesn't": ("does", "not"), "don't": ("do", "not"),
    "didn't": ("did", "not"), "hasn't": ("has", "not"), "haven't": ("have", "not"),
    "hadn't": ("had", "not"), "won't": ("will", "not"), "can't": ("can", "not"),
    "cannot": ("can", "not"), "shouldn't": ("should", "not"), "couldn't": ("could", "not"),
    "it's": ("it", "is"), "what's": ("what", "is"), "who's": ("who", "is"),
    "where's": ("where", "is"), "that's": ("that", "is"), "he's": ("he", "is"),
    "she's": ("she", "is"), "there's": ("there", "is"), "which's": ("which", "is"),
    "how's": ("how", "is"), "i'm": ("i", "am"), "let's": ("let", "us"),
    "i'd": ("i", "would"), "i've": ("i", "have"), "you're": ("you", "are"), "we're": ("we", "are"),
    # typed without the apostrophe, as in a chat box ("whats the capital of Peru?")
    "whats": ("what", "is"), "whos": ("who", "is"), "wheres": ("where", "is"), "hows": ("how", "is"),
    "isnt": ("is", "not"), "doesnt": ("does", "not"), "didnt": ("did", "not"), "wasnt": ("was", "not"),
    "arent": ("are", "not"), "dont": ("do", "not"),
}


@lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def fold(text: str) -> str:
    """Lowercase ASCII, accents stripped ("Zürich" -> "zurich")."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()


@lru_cache(maxsize=100_000)
def stem(word: str) -> str:
    return _stemmer().stemWord(word)


def check_input(text: object, *, max_chars: int = MAX_CHARS, what: str = "The request") -> str:
    """Return ``text`` when the parser can work on it; otherwise raise ``InputError`` saying why."""
    if isinstance(text, bytes):
        raise InputError(f"{what} is bytes, not text.", hint="Decode it (UTF-8) before parsing.")
    if not isinstance(text, str):
        raise InputError(f"{what} must be a string, not {type(text).__name__}.")
    if not text.strip():
        raise InputError(f"{what} is empty: there is nothing to parse.",
                         hint='Write a request such as "Lyon is now the capital of France".')
    if len(text) > max_chars:
        raise InputError(f"{what} is {len(text):,} characters long; the limit is {max_chars:,}.",
                         hint="Split it into shorter requests, or put one request per line in a "
                              "file and parse that (`oneedit parse --file FILE`).",
                         details={"length": len(text), "limit": max_chars})
    for i, ch in enumerate(text):
        if ch in "\t\n\r":
            continue
        cat = unicodedata.category(ch)
        if ch == "\ufffd" or cat in ("Cc", "Cs", "Co", "Cn"):
            kind = ("a NUL byte (binary data?)" if ch == "\x00" else
                    f"the byte 0x{ord(ch) - 0xDC00:02X}, which is not valid UTF-8 (is the input in another "
                    "encoding?)" if 0xDC80 <= ord(ch) <= 0xDCFF else
                    "a replacement character (text decoded from binary or the wrong encoding?)"
                    if ch == "\ufffd" else f"the control character U+{ord(ch):04X}")
            raise InputError(f"{what} contains {kind} at position {i}.",
                             hint="Send plain text: letters, digits, punctuation, spaces, tabs and "
                                  "newlines only.",
                             details={"position": i, "codepoint": f"U+{ord(ch):04X}"})
    return text


@dataclass(slots=True)
class Token:
    """One word (or punctuation mark) of a request."""

    text: str       # as written
    norm: str       # folded: lowercase ASCII, outer punctuation stripped
    stem: str       # what patterns compare
    start: int      # span in the original text
    end: int
    quoted: str | None = None  # the name, for a quoted name (one token)

    @property
    def is_punct(self) -> bool:
        return self.norm in {"?", "!", ";", ",", ":"}


@dataclass(slots=True)
class Tokens:
    """A tokenised request: the tokens and the text they came from."""

    text: str
    items: list[Token] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    def span(self, i: int, j: int) -> str:
        """The original text of tokens ``i..j-1`` (a quoted name without its quotes)."""
        if j <= i:
            return ""
        if j - i == 1 and self.items[i].quoted is not None:
            return self.items[i].quoted
        return self.text[self.items[i].start:self.items[j - 1].end].strip(" ,;:.!?")

    def sub(self, i: int, j: int) -> Tokens:
        return Tokens(self.text, self.items[i:j])

    def without(self, drop: set[int]) -> Tokens:
        return Tokens(self.text, [t for k, t in enumerate(self.items) if k not in drop])

    def norms(self) -> list[str]:
        return [t.norm for t in self.items]

    @property
    def cased(self) -> bool:
        """The text mixes upper and lower case (so names in it are capitalised)."""
        return any(c.isupper() for c in self.text) and any(c.islower() for c in self.text)


def _norm_word(word: str) -> str:
    w = fold(word).strip(".")
    return w.replace("'", "").replace(".", "") if w != "'s" else w


def _make(text: str, word: str, start: int, end: int) -> list[Token]:
    low = fold(word).rstrip(".")
    if low in CONTRACTIONS:
        return [Token(word, part, stem(part), start, end) for part in CONTRACTIONS[low]]
    m = _POSSESSIVE.match(word.rstrip("."))
    if m and len(m["base"]) >= 1 and fold(m["base"]) not in ("let",):
        base = m["base"]
        n = _norm_word(base)
        return [Token(base, n, stem(n), start, start + len(base)),
                Token("'s", "'s", "'s", start + len(base), start + len(base) + 2)]
    if word.lower() == "'s":
        return [Token(word, "'s", "'s", start, end)]
    if word.startswith("#") and len(word) > 1:
        word, start = word[1:], start + 1
    n = _norm_word(word)
    if not n:
        return []
    return [Token(word, n, stem(n) if n[0].isalpha() else n, start, end)]


def tokenize(text: str) -> Tokens:
    """Tokens of a checked request. Quoted names become single tokens."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).translate(_QUOTES)
    out = Tokens(text)
    pos = 0
    quoted = list(_QUOTED.finditer(text))
    for q in quoted + [None]:
        stop = q.start() if q is not None else len(text)
        for m in _WORD.finditer(text, pos, stop):
            out.items.extend(_make(text, m.group(), m.start(), m.end()))
        if q is not None:
            name = (q.group(1) or q.group(2)).strip()
            if name:
                key = f"<q{len(out.items)}>"
                out.items.append(Token(q.group(), key, key, q.start(), q.end(), quoted=name))
            pos = q.end()
    return out
