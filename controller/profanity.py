"""Profanity the word classifier misses: lexicon words behind obfuscation and inside made-up names.

The classifier of :class:`controller.safety.ToxicityCheck` scores words it has seen; "Shitville",
"sh1t", "s.h.i.t", "ｆｕｃｋ" or "Dumbfuckistan" are not among them. This check reads a text the way
a moderator does:

1. **Normalise**: Unicode look-alikes (Unicode's confusables data via confusable-homoglyphs:
   Cyrillic, Greek and mathematical letters; full-width forms, zero-width characters, accents)
   and leetspeak ("sh1t", "$hit", "f@ck", "T|_|rd", "5h17") are undone, hidden letters tried as
   vowels ("f*ck", "c_nt"), letters split by separators ("s.h.i.t", "f u c k", "f-u-c-k") are
   joined, and stretched letters ("fuuuuck") are squeezed; a word English does not have is also
   read by its sound ("fvck", "kunt", "phuck": only as a whole lexicon word). The normalisers are
   glin-profanity's (maintained, MIT) and this module's.
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
   Inside a word English does not have, a root of 6+ letters or one the classifier is sure of
   ("fuck", "cunt") is found anywhere ("Jasshole"); any lexicon word followed by an insult ending
   is one ("cockwomble"). Spaced-out letters that run words together ("f u c k i n g i d i o t")
   are searched for roots.
4. **Insults**: insulting nouns and slurs of no packaged lexicon (:data:`INSULTS`,
   :data:`SLUR_PHRASES`: curated, see there) reject like lexicon words; words with a clean sense
   too (:data:`CONTEXT_INSULTS`: "leech", "vermin") and derogatory adjectives ("brainless") are
   held for review when said of someone ("<someone> is/are ...", "rename ... to ...").
5. **People**: a given name that is also slang ("Dick", "Fanny") before a surname, or after an
   initial, is a person ("Dick Cheney", "Philip K. Dick"): :func:`personal_names`, which
   :class:`controller.safety.SafetyChecker` masks like known names for both checks.

Names the KG already holds are masked before any of this (as for the classifier): they are not
abuse, whatever they contain. The figures are measured by ``python bench/toxicity.py``.
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
                  "brain", "brains", "nut", "nuts", "muncher", "sucker", "suckers", "licker", "lord", "show",
                  # the second halves of British insult compounds ("cockwomble", "twatwaffle", "assclown")
                  "womble", "waffle", "nozzle", "clown", "clowns", "bandit", "jockey", "goblin", "weasel",
                  "trumpet", "muffin", "biscuit", "gibbon", "monkey", "pants", "rag", "knob", "splash",
                  "weed", "wagon", "nugget", "burger", "canoe", "lick", "breath")
#: Characters that stand for a hidden letter ("f*ck", "sh#t", "c_nt"): tried as each vowel.
_WILDCARDS = "*#%_"
#: Leetspeak, one character each ("5h17", "g00k", "bo11ocks"); "1" and "|" are tried as "i" and "l".
_LEET = str.maketrans({"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "$": "s",
                       "@": "a", "!": "i", "+": "t", "(": "c", "€": "e", "©": "c", "¢": "c", "6": "g", "2": "z"})
#: Sound-alike spellings are tried on words less frequent than this in English ("kunt", "shyt").
SOUNDS_ZIPF = 2.0
#: Spellings that sound like the word ("fvck", "kunt", "phuck", "azzhole", "shyt"): tried on words
#: English does not have.
_SOUNDS = (("ph", "f"), ("v", "u"), ("kk", "ck"), ("k", "c"), ("q", "ck"), ("zz", "ss"), ("z", "s"),
           ("y", "i"), ("xx", "ck"), ("x", "ck"))
#: Insulting nouns and swear words that none of the packaged lexicons hold (LDNOOBW, glin-profanity
#: and better-profanity are lists of obscenities, not of insults). No maintained insult lexicon is
#: published on PyPI; this list is curated by hand after Wiktionary's "English derogatory terms"
#: and "English ethnic slurs" categories and Wikipedia's "List of ethnic slurs", keeping only words
#: that are abusive whatever the sentence (a word with a clean everyday sense is in
#: :data:`CONTEXT_INSULTS` instead). Each rejects as a word and serves as a compound root.
INSULTS = frozenset("""
    airhead birdbrain blockhead bonehead buffoon cretin dimwit dingbat dipshit dirtbag dolt douchebag
    douchecanoe dullard dumbass dumbo dunce fathead gobshite halfwit ignoramus imbecile knucklehead
    lowlife meathead moron nincompoop nitwit numbskull numpty numskull peabrain pillock pinhead
    plonker scumbag scumbucket scrote simpleton sleazeball sleazebag twerp wazzock wanker tosser
    bellend arsewipe asswipe shitbag shitstain turd bugger skank slapper floozy trollop strumpet
    harlot hussy bimbo subhuman untermensch deadbeat freeloader
    nigger nigga kike kyke spic spick wetback beaner chink gook raghead towelhead sandnigger paki
    coolie dago wop kaffir kaffer kafir zipperhead golliwog darkie sambo pickaninny jigaboo wog
    gyppo pikey polack yid heeb hymie faggot fag dyke tranny shemale poofter retard mongoloid
    boong injun redskin honky
""".split())
#: Slurs of two words (from the same sources as :data:`INSULTS`), matched on the folded text.
SLUR_PHRASES = ("camel jockey", "sand nigger", "jungle bunny", "porch monkey", "tar baby", "rag head",
                "towel head", "slant eye", "slanty eye", "dune coon", "curry muncher", "spear chucker",
                "wet back", "bog trotter", "bog irish", "cotton picker", "ching chong", "yellow peril",
                "gutter rat", "white trash", "trailer trash", "sheep shagger", "pikey scum")
#: Words that insult only when said of a person or a group ("X is a leech", "X are vermin") and
#: that have a clean sense besides (the leech of biology, slag of a furnace, Coon Rapids): only
#: a predicate about someone (see :data:`_PREDICATE`) makes them a finding, for review.
CONTEXT_INSULTS = frozenset("""
    slag leech leeches vermin parasite parasites animal animals beast beasts cattle pig pigs swine
    cow cows rat rats savage savages clown clowns twit prat git ape apes monkey monkeys dog dogs
    snake snakes trash garbage filth scum thief thieves cockroach cockroaches mongrel mongrels
    fool fools jerk creep pervert degenerate degenerates lunatic psycho maniac loser losers
    hag witch tramp slob coward cowards weakling idiot idiots thug thugs crook crooks criminals
    bandits beggars peasants barbarians savages freaks freak coon coons abo abos jap japs nip
    nips slope slopes mick micks paddy paddies kraut krauts cracker crackers pleb plebs chav chavs
""".split())
#: Adjectives that make a predicate about someone an insult ("X is a brainless airhead").
DEROGATORY = frozenset("""
    stupid dumb brainless mindless senile retarded moronic idiotic imbecilic halfwitted dimwitted
    braindead filthy dirty disgusting vile worthless useless pathetic greedy lazy ugly fat inbred
    bloodsucking parasitic thieving lying scummy sleazy smelly stinking clueless gutless spineless
    cowardly deranged demented ignorant despicable loathsome repulsive revolting hideous obese
""".split())
#: Nouns that make the subject of a predicate a person or a group ("The CEO of X is ...").
_PERSON_NOUNS = frozenset("""
    ceo president king queen prince princess mayor founder wife husband spouse son daughter mother
    father minister chancellor leader chairman chair owner director manager people citizens
    population women men woman man girls boys children kids immigrants refugees jews muslims
    christians catholics gays blacks whites asians arabs folk folks residents inhabitants natives
    workers voters fans members employees staff politicians rich poor
""".split())
#: A word at least this frequent in English (wordfreq's Zipf scale; 1 is once per 100 million
#: words) is a real word, never a made-up compound.
KNOWN_ZIPF = 1.0
#: Ordinary English words (Zipf at least this) in the lexicon that the classifier scores below
#: :data:`ORDINARY_SCORE` are held for review instead of rejected.
ORDINARY_ZIPF = 3.0
ORDINARY_SCORE = 0.5
#: Words beside a root in a made-up compound must be at least this frequent in English ("lake"
#: of "Shitlake"; not "amachi" of the Shitamachi Museum, nor "dorf" of the Wankdorf stadium).
PART_ZIPF = 2.5
#: Lexicon words this common in English that the classifier scores below :data:`COMMON_SCORE`
#: are left to the classifier, which has seen them in context ("sexual health", "Adolf Hitler").
COMMON_ZIPF = 4.0
COMMON_SCORE = 0.7
#: A compound root this long is found anywhere inside a made-up word ("Jasshole", "Xfuckerz").
LONG_ROOT = 6
#: A root the classifier scores at least this is found anywhere inside a made-up word as well.
STRONG_SCORE = 0.95
#: A clean English word at least this frequent that starts or ends with a lexicon word keeps
#: that word from being a compound root ("cocktail" for "cock").
CLEAN_EDGE_ZIPF = 3.0

_SEPARATED = re.compile(r"(?<![^\W_])(?:[^\W_][\s.\-_*+|/\\:~'`^]{1,3}){2,}[^\W_](?![^\W_])")
_INNER_SEPARATORS = re.compile(r"(?<=[^\W_])[.\-_*+|'`~^](?=[^\W_])")
_TOKEN = re.compile(r"[^\s,;:?()\[\]{}\"<>]+")  # "!" stays: "sh!t"
_LETTERS = re.compile(r"[^a-z]+")
_STRETCH = re.compile(r"([a-z])\1{2,}")
#: Leetspeak of several characters that glin-profanity's normaliser leaves ("T|_|rd", "|3itch").
_LEET_SEQUENCES = (("|_|", "u"), ("|3", "b"), ("|)", "d"), ("()", "o"), ("/\\", "a"), ("\\/", "v"),
                   ("|\\|", "n"), ("|<", "k"), ("vv", "w"))
#: A predicate about someone: "<subject> is/are/was a ...", "rename/set <x> to ...".
_PREDICATE = re.compile(r"^(?P<subject>.*?)\b(?:is|are|was|were|be|been|being|'s|'re|to|into|as)\s+"
                        r"(?P<rest>[^.;!?:]+)", re.IGNORECASE)
#: Where the predicate's noun phrase ends ("X is a city in the region of ...").
_PHRASE_END = frozenset("of in on at for from with by that which who whose where when and or but "
                        "than near since until after before because while".split())
_FILLER = frozenset("a an the just such so very really total totally complete completely utter utterly "
                    "absolute absolutely nothing but all truly real right proper bloody fucking".split())


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
        self.common = {w for w in singles if zipf_frequency(w, "en") >= COMMON_ZIPF and scores[w] < COMMON_SCORE}
        self.roots = {w for w in singles if len(w) >= 4} - _clean_edge_roots(self.words)
        self.short = {w for w in singles if len(w) == 3} - self.review
        #: roots long enough to be found anywhere inside a made-up word
        # and the strongest roots, those the classifier is sure of ("fuck", "cunt"), anywhere too
        self.long_roots = sorted((r for r in self.roots if len(r) >= LONG_ROOT or scores[r] >= STRONG_SCORE),
                                 key=len, reverse=True)
        self._slur = re.compile(r"\b(?:" + "|".join(map(re.escape, SLUR_PHRASES)) + r")s?\b")
        self._phrase = re.compile(r"\b(?:" + "|".join(map(re.escape, self.phrases)) + r")\b") if self.phrases else None
        self._known = functools.lru_cache(maxsize=65536)(lambda w: zipf_frequency(w, "en") >= KNOWN_ZIPF)
        self._common = functools.lru_cache(maxsize=65536)(lambda w: zipf_frequency(w, "en") >= CLEAN_EDGE_ZIPF)
        self._word_part = functools.lru_cache(maxsize=65536)(lambda w: zipf_frequency(w, "en") >= PART_ZIPF)

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
            else:
                if _SEPARATED.fullmatch(written):
                    # letters spaced out on purpose hide words run together ("f u c k i n g i d i o t")
                    joined = forms[0] if forms else ""
                    root = next((r for r in self.roots if r in joined), None)
                    if root is not None:
                        out.append(Hit(written, root, "compound", "reject"))
        for m in self._slur.finditer(" ".join(_LETTERS.sub(" ", plain).split())):
            out.append(Hit(m.group(0), m.group(0), "phrase", "reject"))
        out += self._predicate(plain)
        return out

    def _predicate(self, plain: str) -> list[Hit]:
        """Insults said of someone: "<someone> is a <derogatory adjective> ..." or "<someone> are
        <a word of CONTEXT_INSULTS>" (held for review: the words have clean senses too)."""
        out: list[Hit] = []
        for clause in re.split(r"[.;!?\n]+|,\s+(?=\w+\s+(?:is|are|was|were)\b)", plain):
            m = _PREDICATE.match(clause.strip())
            if m is None:
                continue
            words = [_LETTERS.sub("", w) for w in m.group("rest").split()]
            phrase: list[str] = []
            for w in words:
                if w in _PHRASE_END or len(phrase) >= 6:
                    break
                if w and w not in _FILLER:
                    phrase.append(w)
            if _names_something(m.group("subject")):
                # the predicate is a new name ("the capital of X is ...", "rename X to ..."):
                # an insulting word anywhere in it counts ("Island of Criminal Thugs")
                phrase = [w for w in words[:8] if w]
            adjective = next((w for w in phrase if w in DEROGATORY), None)
            if adjective is not None:
                out.append(Hit(adjective, adjective, "insult", "review"))
                continue
            noun = next((w for w in phrase if w in CONTEXT_INSULTS), None)
            if noun is not None and (_about_someone(m.group("subject")) or _names_something(m.group("subject"))):
                out.append(Hit(noun, noun, "insult", "review"))
        return out

    def _word(self, written: str, form: str) -> Hit | None:
        if form.startswith("~"):  # a sound-alike spelling: the lexicon word itself or its plural
            form = form[1:]
            word = form if form in self.words else form[:-1] if form.endswith("s") and form[:-1] in self.words else ""
            if len(word) >= 3 and self.verdict(word) == "reject" and word not in self.common:
                return Hit(written, word, "word", "reject")
            return None
        if len(form) < 3:
            return None
        if form in self.words:
            if form in self.common and form == _LETTERS.sub("", written):
                return None  # an everyday word, written plainly: the classifier decides
            return Hit(written, form, "word", self.verdict(form))
        known = self._known(form)
        for word in (form[:-1] if form.endswith("s") else "", form[:-2] if form.endswith("es") else ""):
            # a plural of a word that rejects ("tossers"; not "Cummings" of "cumming", held for
            # review, nor "spices", a word of its own)
            if word in self.words and self.verdict(word) == "reject" and not self._common(form):
                return Hit(written, word, "word", "reject")
        if not known:
            # a long lexicon word inside a word English does not have is no accident ("Jasshole")
            for root in self.long_roots:
                if root in form and (len(root) >= LONG_ROOT or len(form) - len(root) >= 3):  # not "Twatt"
                    return Hit(written, root, "compound", "reject")
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
        for end in INSULT_ENDINGS:
            head = form[: -len(end)]
            if form.endswith(end) and len(head) >= 3 and head in self.words and self.verdict(head) == "reject":
                return Hit(written, head, "compound", "reject")  # "cockwomble", "knobjockey"
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
        if part in self.words or (len(part) >= 3 and self._word_part(part)):
            return True
        return not prefix and (part in NAME_ENDINGS or part in INSULT_ENDINGS)


#: Lexicon words that are also given names or their short forms (Dick of Richard, Fanny of
#: Frances, Willy of William, Randy of Randolph, Woody of Woodrow): before a surname they name
#: a person ("Dick Cheney", "Philip K. Dick"), not a body part.
GIVEN_NAMES = frozenset({"dick", "dicky", "fanny", "willy", "randy", "woody", "johnson", "peter", "wang", "dong"})
#: A surname is not an everyday English word: "Cheney" is; "Head" of "Dick Head" is not one.
SURNAME_ZIPF = 4.0
_NAME_PARTICLES = frozenset({"van", "von", "de", "der", "den", "la", "le", "du", "di", "da", "mc", "mac"})
_CAPITALISED = re.compile(r"[A-Z][\w'’.-]*")


def personal_names(text: str) -> list[str]:
    """The names of people in ``text`` that start or end with one of :data:`GIVEN_NAMES`, each
    capitalised: the given name before a surname ("Dick Cheney", "Dick Van Dyke", "Dick's
    Sporting Goods") or a surname after a given name or an initial ("Philip K. Dick",
    "Moby-Dick"). A surname is a capitalised word that is no everyday English word nor in the
    lexicon: "Dick Head" or "Fanny Face" are no names. The caller masks them like known names."""
    from wordfreq import zipf_frequency

    lex = lexicon()
    tokens = list(_CAPITALISED.finditer(text))
    out: list[str] = []

    def bare(word: str) -> str:
        return _LETTERS.sub("", re.sub(r"['’]s$", "", word).casefold())

    def surname(word: str) -> bool:
        w = bare(word)
        return bool(w) and w not in lex.words and w not in CONTEXT_INSULTS and \
            (len(w) == 1 or zipf_frequency(w, "en") < SURNAME_ZIPF)

    for i, m in enumerate(tokens):
        word = m.group(0)
        parts = word.split("-")
        if len(parts) == 2 and bare(parts[1]) in GIVEN_NAMES and surname(parts[0]):
            out.append(word)  # "Moby-Dick"
            continue
        if bare(word) not in GIVEN_NAMES:
            continue
        # given name + surname, particles between ("Dick Van Dyke")
        j, end = i + 1, m.end()
        while j < len(tokens) and text[end:tokens[j].start()].strip() == "" and \
                bare(tokens[j].group(0)) in _NAME_PARTICLES:
            end, j = tokens[j].end(), j + 1
        if j < len(tokens) and text[end:tokens[j].start()].strip() == "" and \
                (surname(tokens[j].group(0)) or (j > i + 1 and bare(tokens[j].group(0)) not in INSULTS)):
            out.append(text[m.start():tokens[j].end()])
            continue
        # an initial + this as the surname ("Philip K. Dick")
        if i > 0 and re.fullmatch(r"[A-Z]\.", tokens[i - 1].group(0)) and \
                text[tokens[i - 1].end():m.start()].strip() == "":
            out.append(text[tokens[i - 1].start():m.end()])
    return out


#: Relations whose object is a name: "the capital of X is <a name>".
_NAMING = frozenset("rename renamed name named call called label nickname title capital currency language "
                    "anthem motto slogan brand city town country".split())


def _names_something(subject: str) -> bool:
    """Whether a predicate's subject makes its predicate a name ("rename X to", "the capital of X is")."""
    words = [_LETTERS.sub("", w) for w in subject.split()]
    return any(w in _NAMING for w in words[:4])


def _about_someone(subject: str) -> bool:
    """Whether a predicate's subject (folded) is a person or a group: a name (a word other than the
    first that was capitalised is lost to folding, so: anything but "the/a <common noun>") or a
    noun such as "the CEO of ...", "the people of ...", "women"."""
    words = [_LETTERS.sub("", w) for w in subject.split()]
    words = [w for w in words if w]
    if not words:
        return True  # "rename ... to ...": the predicate is a new name
    if any(w in _PERSON_NOUNS for w in words):
        return True
    return words[0] not in ("the", "a", "an", "this", "that", "its", "their", "every", "each")


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
        words += sorted(INSULTS)
    except (ImportError, ModuleNotFoundError, FileNotFoundError) as exc:
        raise PolicyError(f"The profanity lexicon is not installed ({exc}).",
                          hint="pip install 'glin-profanity>=4.1' 'better-profanity>=0.7' 'wordfreq>=3.1'") from None
    return Lexicon(words)


def _fold(text: str) -> str:
    """``text`` with look-alike letters (Unicode's confusables: Cyrillic, Greek, mathematical
    letters), full-width forms, zero-width characters and accents undone, casefolded."""
    from glin_profanity.utils.unicode import normalize_unicode

    text = unicodedata.normalize("NFKC", text).translate(_confusables())
    text = normalize_unicode(text).casefold()
    if not text.isascii():  # "fúck", "shït": accents off
        text = unicodedata.normalize("NFC", "".join(c for c in unicodedata.normalize("NFKD", text)
                                                     if not unicodedata.combining(c)))
    return text


@functools.cache
def _confusables() -> dict[int, str]:
    """Each non-ASCII character that Unicode's confusables data (confusable-homoglyphs, maintained,
    MIT) lists as a look-alike of a Latin letter, mapped to that letter ("ԁ", "υ", "𝐟")."""
    from confusable_homoglyphs import confusables

    out: dict[int, str] = {}
    for char, homoglyphs in confusables.confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue
        for h in homoglyphs:
            if len(h["c"]) == 1 and h["c"].isascii() and h["c"].isalpha():
                out[ord(char)] = h["c"].lower()
                break
    return out


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
        source = written
        if not separated:
            for seq, letter in _LEET_SEQUENCES:
                source = source.replace(seq, letter)
        joined = re.sub(r"[\s.\-_*+|/\\:~'`^]", "", source) if separated else _INNER_SEPARATORS.sub("", source)
        forms: list[str] = []
        if separated and written[:2] in ("a ", "i "):  # "a t o s s e r": the article is not a letter of it
            forms.append(_LETTERS.sub("", joined[1:]))
        for raw in (joined, normalize_leetspeak(joined, level="moderate", collapse_repeated=False,
                                                remove_spaced_chars=False),
                    normalize_leetspeak(source, level="aggressive", collapse_repeated=False,
                                        remove_spaced_chars=False)):
            letters = _LETTERS.sub("", raw)
            forms += [letters, _STRETCH.sub(r"\1", letters), _STRETCH.sub(r"\1\1", letters)]
            # a hyphenated or dotted word is also read part by part ("C*ck-sucker")
            for part in re.split(r"[-./_]", raw):
                letters = _LETTERS.sub("", part)
                forms += [letters, _STRETCH.sub(r"\1", letters), _STRETCH.sub(r"\1\1", letters)]
        forms += _variants(source if not separated else joined)
        out.append((written, list(dict.fromkeys(f for f in forms if f))))
    return out


def _variants(word: str) -> list[str]:
    """More letter-only forms of ``word``: hidden letters (:data:`_WILDCARDS`) as vowels, one
    character leetspeak (:data:`_LEET`), and for a word English does not have, spellings that
    sound alike (:data:`_SOUNDS`)."""
    from wordfreq import zipf_frequency

    bases = [word.translate(_LEET)]
    bases += [b.replace("1", "i").replace("|", "i") for b in bases] + [b.replace("1", "l").replace("|", "l") for b in bases]
    out: list[str] = []
    for base in dict.fromkeys(bases):
        inner = base.strip(_WILDCARDS)
        holes = sum(inner.count(c) for c in _WILDCARDS)
        if 0 < holes <= 2 and len(inner) >= 3:
            cands = [inner]
            for _ in range(holes):
                cands = [re.sub(r"[*#%_]", v, c, count=1) for c in cands for v in "aeiou"]
            out += [_LETTERS.sub("", c) for c in cands]
        letters = _LETTERS.sub("", base)
        out += [letters, _STRETCH.sub(r"\1", letters)]
    for form in list(dict.fromkeys(out)):
        if 3 <= len(form) <= 12 and zipf_frequency(form, "en") < SOUNDS_ZIPF:
            sounded = [form.replace(a, b) for a, b in _SOUNDS if a in form]
            whole = form
            for a, b in _SOUNDS:
                whole = whole.replace(a, b)
            # marked: a sound-alike counts only as a lexicon word itself, never inside a compound
            # ("Konosuke" would otherwise read as "conosuce")
            out += ["~" + f for f in (*sounded, whole) if f != form]
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
            how = {"word": "", "phrase": "", "compound": " (inside a made-up word)",
                   "insult": " (said of someone)"}[worst.how]
            if worst.verdict == "reject":
                msg = (f"The {what} {_quote(text)} contains profanity: {_quote(worst.written)} reads as "
                       f"{_quote(worst.word)}{how}. Rephrase it without insults or profanity.")
            else:
                msg = (f"The {what} {_quote(text)} contains {_quote(worst.written)}, a word often used "
                       f"as profanity; a curator will look at it before it is applied.")
            out.append(Finding("profanity", worst.verdict, msg, None, text[:200]))
        return out
