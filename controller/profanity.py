"""Profanity the word classifier misses: lexicon words behind obfuscation and inside made-up names.

The classifier of :class:`controller.safety.ToxicityCheck` scores words it has seen; "Shitville",
"sh1t", "s.h.i.t", "ｆｕｃｋ" or "Dumbfuckistan" are not among them. This check reads a text the way
a moderator does:

1. **Normalise**: Unicode look-alikes (Cyrillic and Greek letters, full-width forms, zero-width
   characters) and leetspeak ("sh1t", "$hit", "f@ck") are undone, letters split by separators
   ("s.h.i.t", "f u c k", "f-u-c-k") are joined, and stretched letters ("fuuuuck") are squeezed.
   The normalisers are glin-profanity's (maintained, MIT).
2. **Words**: every normalised word is looked up in the lexicon, glin-profanity's English
   dictionary (the LDNOOBW list of 400 words and phrases). A hit rejects, except for words that
   are ordinary English and that the classifier does not score as profane ("escort",
   "domination", "hardcore"): those are held for a curator.
3. **Made-up compounds**: a word that is not English (wordfreq, the maintained frequency lists of
   which "Scunthorpe", "Penistone" and "Cockburn" are part) and that is built from a *compound
   root* — a lexicon word of 4 letters or more that starts or ends no common clean English word
   (so "shit", "fuck", "cunt", but not "cock" of "cocktail" or "anal" of "analysis") — with a real
   word or a place-name ending around it ("Shitville", "Fucklandia", "Dumbfuckistan") rejects.
   Short lexicon words ("ass", "tit") make a compound only with a place-name ending ("Assville").

Names the KG already holds are masked before any of this (as for the classifier): they are not
abuse, whatever they contain. The figures are measured by ``python bench/toxicity_threshold.py``.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

#: Endings of place and personal names that turn a swear word into a made-up name.
NAME_ENDINGS = ("ville", "villes", "land", "landia", "lands", "burg", "burgh", "borough", "berg", "stan",
                "istan", "ton", "town", "towne", "city", "ia", "ania", "shire", "ford", "field", "polis",
                "grad", "wood", "port", "mouth", "ham", "by", "vania", "ovia", "ica", "ico", "ey", "o",
                "er", "ers", "y", "ie", "s", "es", "ing", "ed")
#: Endings that make an insult of a swear word, even in words English has ("shithole", "fuckwit").
INSULT_ENDINGS = ("hole", "holes", "head", "heads", "face", "faces", "wipe", "wipes", "bag", "bags", "wad",
                  "wads", "stain", "hat", "hats", "wit", "wits", "tard", "tards", "stick", "sticks", "bucket",
                  "brain", "brains", "nut", "nuts", "muncher", "sucker", "suckers", "licker", "lord", "show")
#: A word at least this frequent in English (wordfreq's Zipf scale; 1 is once per 100 million
#: words) is a real word, never a made-up compound.
KNOWN_ZIPF = 1.0
#: Ordinary English words (Zipf at least this) in the lexicon that the classifier scores below
#: :data:`ORDINARY_SCORE` are held for review instead of rejected.
ORDINARY_ZIPF = 3.0
ORDINARY_SCORE = 0.5
#: A clean English word at least this frequent that starts or ends with a lexicon word keeps
#: that word from being a compound root ("cocktail" for "cock").
CLEAN_EDGE_ZIPF = 3.0

_SEPARATED = re.compile(r"(?<![^\W_])(?:[^\W_][\s.\-_*+|/\\:~'`^]{1,3}){2,}[^\W_](?![^\W_])")
_INNER_SEPARATORS = re.compile(r"(?<=[^\W_])[.\-_*+|'`~^](?=[^\W_])")
_TOKEN = re.compile(r"[^\s,;:?()\[\]{}\"<>]+")  # "!" stays: "sh!t"
_LETTERS = re.compile(r"[^a-z]+")
_STRETCH = re.compile(r"([a-z])\1{2,}")


@dataclass(frozen=True, slots=True)
class Hit:
    """A lexicon word found in a text: the word as written, the lexicon word, how it was found
    (``word``, ``phrase`` or ``compound``), and whether it rejects or asks for review."""

    written: str
    word: str
    how: str
    verdict: str  # "reject" | "review"


class Lexicon:
    """The lexicon and the derived word sets (built once per process: :func:`lexicon`)."""

    def __init__(self, words: Iterable[str]):
        from wordfreq import zipf_frequency

        from controller.safety import _predict_prob

        words = sorted({w.strip().casefold() for w in words if w.strip()})
        self.phrases = [w for w in words if " " in w]
        self.words = {w for w in words if " " not in w and w.isalpha()}
        singles = sorted(self.words)
        scores = dict(zip(singles, (float(p) for p in _predict_prob()(singles))))
        self.review = {w for w in singles if zipf_frequency(w, "en") >= ORDINARY_ZIPF and scores[w] < ORDINARY_SCORE}
        self.roots = {w for w in singles if len(w) >= 4} - _clean_edge_roots(self.words)
        self.short = {w for w in singles if len(w) == 3} - self.review
        self._phrase = re.compile(r"\b(?:" + "|".join(map(re.escape, self.phrases)) + r")\b") if self.phrases else None
        self._known = functools.lru_cache(maxsize=65536)(lambda w: zipf_frequency(w, "en") >= KNOWN_ZIPF)

    def verdict(self, word: str) -> str:
        return "review" if word in self.review else "reject"

    def hits(self, text: str) -> list[Hit]:
        """Every lexicon word in ``text`` (see the module's docstring)."""
        out: list[Hit] = []
        plain = _fold(text)
        if self._phrase is not None:
            for m in self._phrase.finditer(" ".join(_LETTERS.sub(" ", plain).split())):
                if not any(w in self.words for w in m.group(0).split()):
                    out.append(Hit(m.group(0), m.group(0), "phrase", "review"))
        for written, forms in _words(plain):
            for form in forms:
                hit = self._word(written, form)
                if hit is not None:
                    out.append(hit)
                    break
        return out

    def _word(self, written: str, form: str) -> Hit | None:
        if len(form) < 3:
            return None
        if form in self.words:
            return Hit(written, form, "word", self.verdict(form))
        for word in (form[:-1] if form.endswith("s") else "", form[:-2] if form.endswith("es") else ""):
            # a plural of a word that rejects ("tossers"; not "Cummings" of "cumming", held for review)
            if word in self.words and self.verdict(word) == "reject":
                return Hit(written, word, "word", "reject")
        known = self._known(form)
        for root in self.roots:
            at = form.find(root)
            while at >= 0:
                before, after = form[:at], form[at + len(root):]
                # a word English has is a compound only as root + insult ending ("shithole"; not
                # "Penistone"); a made-up one with any real word or name ending around the root
                if (not before and after in INSULT_ENDINGS) if known else \
                        (self._part(before, prefix=True) and self._part(after, prefix=False)):
                    return Hit(written, root, "compound", "reject")
                at = form.find(root, at + 1)
        for root in self.short:
            rest = form[len(root):]
            if form.startswith(root) and len(rest) >= 2 and \
                    (rest in INSULT_ENDINGS or (not known and rest in NAME_ENDINGS)):
                return Hit(written, root, "compound", "reject")
        return None

    def _part(self, part: str, *, prefix: bool) -> bool:
        """Whether ``part`` may stand beside a root in a made-up compound: nothing, a real word
        of three letters or more, another lexicon word, or (after the root) a name ending."""
        if not part:
            return True
        if part in self.words or (len(part) >= 3 and self._known(part)):
            return True
        return not prefix and (part in NAME_ENDINGS or part in INSULT_ENDINGS)


def _clean_edge_roots(words: set[str]) -> set[str]:
    """Lexicon words of 4+ letters that start or end a common clean English word (not itself in
    the lexicon nor the lexicon word plus an inflection): ``cocktail`` keeps ``cock`` out."""
    from wordfreq import iter_wordlist, zipf_frequency

    long = {w for w in words if len(w) >= 4}
    out: set[str] = set()
    for word in iter_wordlist("en"):
        if zipf_frequency(word, "en") < CLEAN_EDGE_ZIPF:
            break
        if not word.isalpha() or word in words:
            continue
        for k in range(4, len(word)):
            for root in (word[:k], word[-k:]):
                if root in long and not _inflected(word, root, words):
                    out.add(root)
    return out


def _inflected(word: str, root: str, words: set[str]) -> bool:
    """``word`` is ``root`` with an inflection or a profane suffix ("fucking", "shithole")."""
    if word.startswith(root):
        rest = word[len(root):]
        return rest in ("s", "es", "ed", "er", "ers", "ing", "in", "y", "ty", "ter", "ting", "ted", "ey") \
            or rest in words or any(rest.startswith(w) for w in words if len(w) >= 4)
    rest = word[: -len(root)]
    return rest in words or any(rest.endswith(w) for w in words if len(w) >= 4)


#: glin-profanity's dictionaries of other languages whose words are read too, with wordfreq's
#: language code: abuse in a shared KG is not always English ("mierda", "Scheiße", "kurwa").
FOREIGN = {"spanish": "es", "german": "de", "french": "fr", "italian": "it", "portuguese": "pt",
           "dutch": "nl", "polish": "pl"}
#: A foreign word this common in English is an English word or name ("anita"): not read.
FOREIGN_ENGLISH_ZIPF = 2.5


@functools.cache
def lexicon() -> Lexicon:
    """The lexicon (built once per process, a few seconds): glin-profanity's English dictionary
    (LDNOOBW), better-profanity's word list (its spelled-out variants), and the words of
    glin-profanity's dictionaries of :data:`FOREIGN` languages that are neither everyday words
    there nor English words."""
    from controller.safety import _predict_prob
    from oneedit.core import PolicyError

    try:
        from wordfreq import zipf_frequency

        base = resources.files("glin_profanity") / "data" / "dictionaries"
        words = list(json.loads((base / "english.json").read_text(encoding="utf-8"))["words"])
        for language, code in FOREIGN.items():
            for w in json.loads((base / f"{language}.json").read_text(encoding="utf-8"))["words"]:
                folded = _fold(w)
                plain = _LETTERS.sub("", unicodedata.normalize("NFKD", folded))
                if len(plain) >= 4 and zipf_frequency(plain, "en") < FOREIGN_ENGLISH_ZIPF:
                    words.append(plain if " " not in folded else folded)
        listed = resources.files("better_profanity") / "profanity_wordlist.txt"
        extra = sorted({w.strip().casefold() for w in listed.read_text(encoding="utf-8").splitlines()
                        if w.strip().isalpha()} - {w.casefold() for w in words})
        # the list also holds everyday words and names ("sexual", "hitler", "willy"): those the
        # classifier does not score as profane are left out
        scores = _predict_prob()(extra)
        words += [w for w, p in zip(extra, scores) if zipf_frequency(w, "en") < ORDINARY_ZIPF or p >= ORDINARY_SCORE]
    except (ImportError, ModuleNotFoundError, FileNotFoundError) as exc:
        raise PolicyError(f"The profanity lexicon is not installed ({exc}).",
                          hint="pip install 'glin-profanity>=4.1' 'better-profanity>=0.7' 'wordfreq>=3.1'") from None
    return Lexicon(words)


def _fold(text: str) -> str:
    """``text`` with look-alike letters, full-width forms and zero-width characters undone, casefolded."""
    from glin_profanity.utils.unicode import normalize_unicode

    return normalize_unicode(unicodedata.normalize("NFKC", text)).casefold()


def _words(plain: str) -> list[tuple[str, list[str]]]:
    """Each word of ``plain`` (a folded text) as written, with the letter-only forms to look up:
    as written, with leetspeak undone, and with stretched letters squeezed. Letters split by
    separators ("s.h.i.t", "f u c k") count as one word."""
    from glin_profanity.utils.leetspeak import normalize_leetspeak

    tokens = [m.group(0) for m in _SEPARATED.finditer(plain)]
    tokens += [t.strip("!.'*-_") for t in _TOKEN.findall(plain)]
    out: list[tuple[str, list[str]]] = []
    for written in dict.fromkeys(t for t in tokens if t):
        separated = _SEPARATED.fullmatch(written) is not None
        joined = re.sub(r"[\s.\-_*+|/\\:~'`^]", "", written) if separated else _INNER_SEPARATORS.sub("", written)
        forms: list[str] = []
        if separated and written[:2] in ("a ", "i "):  # "a t o s s e r": the article is not a letter of it
            forms.append(_LETTERS.sub("", joined[1:]))
        for raw in (joined, normalize_leetspeak(joined, level="moderate", collapse_repeated=False,
                                                remove_spaced_chars=False),
                    normalize_leetspeak(written, level="aggressive", collapse_repeated=False,
                                        remove_spaced_chars=False)):
            letters = _LETTERS.sub("", raw)
            forms += [letters, _STRETCH.sub(r"\1", letters), _STRETCH.sub(r"\1\1", letters)]
            # a hyphenated or dotted word is also read part by part ("C*ck-sucker")
            forms += [_LETTERS.sub("", p) for p in re.split(r"[-./_]", raw) if p]
        out.append((written, list(dict.fromkeys(f for f in forms if f))))
    return out


@dataclass(frozen=True, slots=True)
class LexiconCheck:
    """Findings for texts that hold lexicon words (see the module's docstring)."""

    def check(self, texts: Sequence[str] | str, *, what: str = "request", known: Iterable[str] = ()) -> list:
        from controller.safety import Finding, _quote, mask_names

        texts = [texts] if isinstance(texts, str) else list(texts)
        known = list(known)
        lex = lexicon()
        out = []
        for text in texts:
            if not text or not text.strip():
                continue
            hits = lex.hits(mask_names(text, known) if known else text)
            if not hits:
                continue
            worst = next((h for h in hits if h.verdict == "reject"), hits[0])
            how = {"word": "", "phrase": "", "compound": " (inside a made-up word)"}[worst.how]
            if worst.verdict == "reject":
                msg = (f"The {what} {_quote(text)} contains profanity: {_quote(worst.written)} reads as "
                       f"{_quote(worst.word)}{how}. Rephrase it without insults or profanity.")
            else:
                msg = (f"The {what} {_quote(text)} contains {_quote(worst.written)}, a word often used "
                       f"as profanity; a curator will look at it before it is applied.")
            out.append(Finding("profanity", worst.verdict, msg, None, text[:200]))
        return out
