"""Sentence frames: the shapes a request takes around a relation phrase, matched on word stems.

A frame is a small pattern such as ``"{O} {BE} {DET}? {P} {OF} {S}"`` ("Lyon is the capital of
France"): ``{S}`` and ``{O}`` are the subject and object slots of the relation that the phrase
``{P}`` names, upper-case names are word classes (copulas, determiners, question words, the
schema's type words), ``word?`` is optional and ``a|b`` an alternative. Generic frames are
instantiated with each schema phrase found in the request; the schema's own templates ("The
capital of {subject} is {object}", "Q: Where was {subject} born? A: {object}") become frames of
their relation. A frame says which slots it has (the missing one is what a question asks for)
and, for commands ("set … to …", "remove … as …"), which operation it means.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal

from interpreter import lexicon as lx
from interpreter.relations import Phrase, RelationLexicon, words_of
from interpreter.text import stem

FrameKind = Literal["fact", "query", "yesno", "about", "all"]

#: Prepositions that may end a phrase and move to the front of a question
#: ("works for" -> "For which company does Tim Cook work?").
FRONTABLE = ("for", "in", "at", "to", "by", "with", "on", "from", "of")


@dataclass(frozen=True, slots=True)
class Frame:
    name: str
    spec: str
    kind: FrameKind = "fact"
    op: Literal["assert", "replace", "retract"] | None = None
    relation: str | None = None   # template frames belong to one relation
    fronted: bool = False         # the phrase's last word is fronted ({PREP})
    weak: bool = False            # telegraphic shapes: only when nothing else fits

    @property
    def slots(self) -> set[str]:
        return {s for s in ("S", "O") if "{" + s + "}" in self.spec}


def _f(name: str, spec: str, kind: FrameKind = "fact", op=None, **kw) -> Frame:
    return Frame(name, spec, kind, op, **kw)


#: Generic frames, instantiated for each schema phrase present in a request.
GENERIC: tuple[Frame, ...] = (
    # statements
    _f("of_is", "the? {ADJ}? {NEW}? {P} {OF} {S} {BE} {AT}? {O}"),
    _f("pos_is", "{S} 's {ADJ}? {NEW}? {P} {BE} {AT}? {O}"),
    _f("is_of", "{O} {BE} {DET}? {ADJ}? {NEW}? {P} {OF} {S}"),
    _f("is_pos", "{O} {BE} {S} 's {ADJ}? {NEW}? {P}"),
    _f("has_as", "{S} has|have|had|got {O} as {DET}? {ADJ}? {NEW}? {P}"),
    _f("has_a", "{S} has|have|had|got {DET}? {NEW}? {P} {O}"),
    _f("be_verb", "{S} {BE} {DET}? {P} {O}"),
    _f("verb", "{S} {P} {O}"),
    _f("do_verb", "{S} does|do|did {P} {O}"),
    _f("pos_appos", "{S} 's {ADJ}? {NEW}? {P} {O}"),
    _f("tele_is", "{S} {NEW}? {P} {BE} {O}"),
    _f("is_tele", "{O} {BE} {S} {NEW}? {P}"),
    _f("in_the_p", "{S} {BE} in the|a? {O} {P}"),  # "Tesla is in the automotive industry"
    _f("uses_as", "{S} use|uses|used {O} as {DET}? {P}"),
    _f("leave_of", "{O} {LEAVE} {DET}? {ADJ}? {P} {OF} {S}", op="retract"),
    _f("leave_pos", "{O} {LEAVE} {S} 's {ADJ}? {P}", op="retract"),
    _f("home_pos", "{O} {BE} home to {S} 's {ADJ}? {P}"),
    _f("home_of", "{O} {BE} home to {DET}? {ADJ}? {P} {OF} {S}"),
    _f("of_colon", "the? {ADJ}? {NEW}? {P} {OF} {S} {O}", weak=True),
    # replace: becoming, changing, setting
    _f("become_of", "{O} {BECOME} {DET}? {ADJ}? {NEW}? {P} {OF} {S}", op="replace"),
    _f("become_pos", "{O} {BECOME} {S} 's {ADJ}? {NEW}? {P}", op="replace"),
    _f("pos_changed", "{S} 's {ADJ}? {P} {CHANGED} {O}", op="replace"),
    _f("of_changed", "the? {ADJ}? {P} {OF} {S} {CHANGED} {O}", op="replace"),
    _f("set_of", "{REPLACE} the? {ADJ}? {P} {OF} {S} to|as|into {O}", op="replace"),
    _f("set_pos", "{REPLACE} {S} 's {ADJ}? {P} to|as|into {O}", op="replace"),
    _f("set_tele", "{REPLACE} {S} {P} to|as|into {O}", op="replace"),
    _f("make_of", "make|makes|made {O} {DET}? {ADJ}? {NEW}? {P} {OF} {S}", op="replace"),
    _f("make_pos", "make|makes|made {O} {S} 's {ADJ}? {NEW}? {P}", op="replace"),
    _f("replace_as", "replace|replaced|substitute {X} with|by {O} as {DET}? {ADJ}? {P} {OF} {S}", op="replace"),
    _f("replaced_as", "{O} replaced|replaces|succeeded|succeeds {X} as {DET}? {ADJ}? {P} {OF} {S}", op="replace"),
    _f("moved_its", "{S} moved|moves|relocated|relocates|has_moved its|their? {P} to {O}", op="replace"),
    _f("set_to_from", "{REPLACE} the? {ADJ}? {P} {OF} {S} from {X} to {O}", op="replace"),
    # retract
    _f("rm_as_of", "{RETRACT} {O} as {DET}? {ADJ}? {P} {OF} {S}", op="retract"),
    _f("rm_as_pos", "{RETRACT} {O} as {S} 's {ADJ}? {P}", op="retract"),
    _f("rm_from_pos", "{RETRACT} {O} from {S} 's {ADJ}? {P}", op="retract"),
    _f("rm_from_of", "{RETRACT} {O} from {DET}? {ADJ}? {P} {OF} {S}", op="retract"),
    _f("rm_all_of", "{RETRACT} {DET}? {ADJ}? {P} {OF} {S}", "all", op="retract"),
    _f("rm_all_pos", "{RETRACT} {S} 's {ADJ}? {P}", "all", op="retract"),
    _f("rm_tele", "{RETRACT} {S} {P} {O}", op="retract"),
    _f("has_no", "{S} has|have|had no {ADJ}? {P}", "all", op="retract"),
    _f("has_all", "{S} does|do|did? has|have|had {DET}? {ADJ}? {P}", "all"),
    _f("rm_be_verb", "{RETRACT} {S} {BE} {DET}? {P} {O}", op="retract"),
    # assert commands
    _f("add_as_of", "{ASSERT} {O} as {DET}? {ADJ}? {NEW}? {P} {OF} {S}", op="assert"),
    _f("add_as_pos", "{ASSERT} {O} as {S} 's {ADJ}? {NEW}? {P}", op="assert"),
    _f("add_to_pos", "{ASSERT} {O} to {S} 's {ADJ}? {P}", op="assert"),
    _f("add_to_of", "{ASSERT} {O} to {DET}? {ADJ}? {P} {OF} {S}", op="assert"),
    _f("add_tele", "{ASSERT} {S} {P} {O}", op="assert"),
    # questions: object unknown
    _f("q_wh_of", "{WH} {T}? {BE} {DET}? {ADJ}? {P} {OF} {S}", "query"),
    _f("q_wh_pos", "{WH} {T}? {BE} {S} 's {ADJ}? {P}", "query"),
    _f("q_wh_pron", "{WH} {T}? {BE} {S} {ADJ}? {P}", "query"),
    _f("q_wh_aux", "{WH} {T}? {AUX} {S} {DET}? {P}", "query"),
    _f("q_front", "{PREP} {WH} {T}? {AUX} {S} {DET}? {P}", "query", fronted=True),
    _f("q_where", "where {AUX} {S} {DET}? {P}", "query", fronted=True),
    _f("q_wh_has", "{WH} {T}? does|do|did {S} have|has as {DET}? {ADJ}? {P}", "query"),
    _f("q_of", "{QCMD}? the? {ADJ}? {P} {OF} {S}", "query"),
    _f("q_pos", "{QCMD}? {S} 's {ADJ}? {P}", "query"),
    _f("q_has_a", "does|do|did {S} have|has {DET}? {ADJ}? {P}", "query"),
    _f("q_tele", "{S} {P}", "query", weak=True),
    # questions: subject unknown
    _f("q_wh_verb", "{WH} {T}? {P} {O}", "query"),
    _f("q_wh_be_verb", "{WH} {T}? {BE} {DET}? {P} {O}", "query"),
    _f("q_wh_has_as", "{WH} {T}? has|have|had {O} as {DET}? {ADJ}? {P}", "query"),
    _f("q_whose", "whose {ADJ}? {P} {BE} {O}", "query"),
    _f("q_wh_p_aux", "{WH} {ADJ}? {P} {AUX} {S} use|uses|have|has|speak|speaks|pay|pays", "query"),
    _f("q_wh_p_in", "{WH} {ADJ}? {P} {AUX} they|people|you|we speak|use|pay_with|spoken|used in {S}", "query"),
    _f("q_wh_is_of", "{WH} {T}? {BE} {O} {DET}? {ADJ}? {P} {OF}", "query"),
    _f("q_wh_aux_verb", "{WH} {T}? does|do|did {P} {O}", "query"),
    # yes/no questions
    _f("y_of", "{AUX} {O} {DET}? {ADJ}? {P} {OF} {S}", "yesno"),
    _f("y_pos", "{AUX} {O} {S} 's {ADJ}? {P}", "yesno"),
    _f("y_verb", "{AUX} {S} {DET}? {P} {O}", "yesno"),
    _f("y_of_is", "{AUX} the? {ADJ}? {P} {OF} {S} {O}", "yesno"),
    _f("y_pos_is", "{AUX} {S} 's {ADJ}? {P} {O}", "yesno"),
    _f("y_both", "{AUX} {S} and {O} {P}", "yesno"),  # "Are X and Y married?"
    _f("y_in_p", "{AUX} {S} in the|a? {O} {P}", "yesno"),
    _f("y_has_as", "{AUX} {S} have|has {O} as {DET}? {ADJ}? {P}", "yesno"),
)

#: Frames without a relation phrase: "Who is Tim Cook?", "Tell me about France"; "Einstein was a
#: physicist" (``isa``: the relation is the one the schema has between the two names' types).
ABOUT: tuple[Frame, ...] = (
    _f("isa", "{S} {BE} a|an {O}"),
    _f("isa_t", "{S} {BE} a|an {O} {T}"),
    _f("who_is", "who|what {BE} {S}", "about"),
    _f("about", "{QCMD}? everything|all|anything|something? about {S}", "about"),
    _f("know_about", "what do|does you|we|the_kg know about {S}", "about"),
    _f("facts_about", "{QCMD}? {DET}? all? fact|facts|information|info|data about|on|of|for {S}", "about"),
    _f("show", "show|describe|display|lookup|look_up {S}", "about"),
)

_CLASS_WORDS: dict[str, tuple[str, ...]] = {
    "BE": lx.COPULAS, "DET": lx.DETERMINERS, "ADJ": lx.ADJECTIVES, "NEW": lx.NEW_ADJECTIVES,
    "WH": lx.QUESTION_WORDS, "AUX": lx.YES_NO_STARTS, "BECOME": lx.BECOME_VERBS,
    "CHANGED": lx.CHANGED_VERBS, "RETRACT": lx.RETRACT_COMMANDS, "ASSERT": lx.ASSERT_COMMANDS,
    "REPLACE": lx.REPLACE_COMMANDS, "QCMD": lx.QUERY_COMMANDS, "OF": ("of", "for", "in", "at"),
    "AT": ("in", "at", "located in", "located at", "based in", "situated in"),
    "LEAVE": lx.LEAVE_VERBS,
}
_CAPTURED = {"NEW": "new", "T": "T"}
_SLOT = r"(?:\S+ )+?"


@dataclass(frozen=True, slots=True)
class RawMatch:
    """A frame that fits a clause: the relation and the token spans of its slots."""

    frame: Frame
    relation: str
    slots: dict[str, tuple[int, int]]
    literal: int                 # tokens matched by the frame's words (more = more specific)
    new: bool = False            # "the *new* CEO": a replacement
    phrase: str = ""
    asked_type: str | None = None  # "which *company* …": the type of the answer
    event_op: str | None = None  # the operation the relation's event verb implies ("quit": retract)


def _stems(words: str) -> str:
    if words == "'s":
        return words
    return " ".join(stem(w) for w in words_of(words.replace("_", " ")))


@dataclass
class Grammar:
    """Frames compiled against one schema. Compiled patterns are cached per (frame, phrase)."""

    lexicon: RelationLexicon
    classes: dict[str, list[str]] = field(default_factory=dict)
    templates: list[tuple[Frame, re.Pattern, frozenset[str]]] = field(default_factory=list)
    _cache: dict[tuple[str, str], re.Pattern | None] = field(default_factory=dict)
    _needs: dict[str, list[frozenset[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, words in _CLASS_WORDS.items():
            self.classes[name] = sorted({_stems(w) for w in words if _stems(w)}, key=len, reverse=True)
        self.classes["T"] = sorted(self.lexicon.type_words, key=len, reverse=True)
        for frame in GENERIC + ABOUT:
            self._needs[frame.name] = self._requirements(frame)
        for rid, template in self.lexicon.templates():
            for frame in _template_frames(rid, template):
                pattern = self._compile(frame, None)
                if pattern is not None:
                    literal = frozenset(w for w in _literal_words(frame.spec))
                    self.templates.append((frame, pattern, literal))

    # -- compiling -------------------------------------------------------------------------
    def _compile(self, frame: Frame, phrase: Phrase | None) -> re.Pattern | None:
        items = frame.spec.split()
        out: list[str] = []
        prev_slot: str | None = None
        for item in items:
            optional = item.endswith("?") and len(item) > 1
            item = item.rstrip("?") if optional else item
            if item in ("{S}", "{O}", "{X}"):
                name = item[1]
                if prev_slot:
                    # Two slots side by side: one group now, split every way at match time.
                    out[-1] = f"(?P<{prev_slot}_{name}>(?:\\S+ ){{2,}}?)"
                else:
                    out.append(f"(?P<{name}>{_SLOT})")
                prev_slot = name
                continue
            prev_slot = None
            if item == "{P}":
                if phrase is None:
                    return None
                stems = phrase.stems[:-1] if frame.fronted else phrase.stems
                if not stems:
                    return None
                out.append(f"(?P<P>{re.escape(' '.join(stems))} )")
                continue
            if item == "{PREP}":
                if phrase is None or len(phrase.stems) < 2 or phrase.stems[-1] not in FRONTABLE:
                    return None
                out.append(f"(?:{re.escape(phrase.stems[-1])} )")
                continue
            if item.startswith("{"):
                words = self.classes[item[1:-1]]
                group = _CAPTURED.get(item[1:-1])
                alt = "|".join(re.escape(w) + " " for w in words)
                out.append((f"(?P<{group}>{alt})" if group else f"(?:{alt})") + ("?" if optional else ""))
                continue
            alts = sorted({_stems(w) for w in item.split("|")} - {""}, key=len, reverse=True)
            alt = "|".join(re.escape(w) + " " for w in alts)
            out.append(f"(?:{alt})" + ("?" if optional else ""))
        if frame.name == "q_where" and (phrase is None or phrase.stems[-1] not in ("in", "at")):
            return None
        return re.compile("^" + "".join(out) + "$")

    def _pattern(self, frame: Frame, phrase: Phrase) -> re.Pattern | None:
        key = (frame.name, phrase.key)
        if key not in self._cache:
            self._cache[key] = self._compile(frame, phrase)
        return self._cache[key]

    def _requirements(self, frame: Frame) -> list[frozenset[str]]:
        """For each required word item of a frame, the first stems that can start it: a frame
        whose requirement meets none of a clause's stems cannot match it (checked before
        compiling anything)."""
        out = []
        for item in frame.spec.split():
            if item.endswith("?") or item in ("{S}", "{O}", "{X}", "{P}", "{PREP}"):
                continue
            if item.startswith("{"):
                words = self.classes[item[1:-1]]
            else:
                words = [_stems(w) for w in item.split("|")]
            out.append(frozenset(w.split()[0] for w in words if w))
        return out

    def _applicable(self, frame: Frame, stem_set: set[str]) -> bool:
        return all(need & stem_set for need in self._needs[frame.name])

    # -- matching --------------------------------------------------------------------------
    def phrases_in(self, stems: list[str]) -> list[Phrase]:
        found: dict[tuple[str, str], Phrase] = {}
        for i, s in enumerate(stems):
            for p in self.lexicon.by_first_stem.get(s, ()):
                if tuple(stems[i:i + len(p.stems)]) == p.stems:
                    found[(p.relation, p.key)] = p
        # A fronted question ("for which company does he work") needs the phrase minus its
        # preposition to be present; offer every phrase whose remaining words are there.
        joined = " " + " ".join(stems) + " "
        for p in self.lexicon.phrases:
            if (p.relation, p.key) not in found and len(p.stems) >= 2 and p.stems[-1] in FRONTABLE \
                    and f" {' '.join(p.stems[:-1])} " in joined:
                found[(p.relation, p.key)] = p
        return list(found.values())

    def match(self, stems: list[str]) -> list[RawMatch]:
        """Every way a frame fits the whole clause ``stems``."""
        if not stems:
            return []
        text = " ".join(stems) + " "
        starts, pos = [], 0
        for s in stems:
            starts.append(pos)
            pos += len(s) + 1
        index = {p: i for i, p in enumerate(starts)}
        out: list[RawMatch] = []
        stem_set = set(stems)
        frames = [f for f in GENERIC if self._applicable(f, stem_set)]
        for phrase in self.phrases_in(stems):
            for frame in frames:
                pattern = self._pattern(frame, phrase)
                if pattern is None:
                    continue
                m = pattern.match(text)
                if m is not None:
                    raws = self._raw(frame, phrase.relation, m, index, len(stems), phrase.text)
                    out.extend(dataclasses.replace(r, event_op=phrase.op) if phrase.op else r for r in raws)
        for frame, pattern, literal in self.templates:
            if literal <= stem_set:
                m = pattern.match(text)
                if m is not None:
                    out.extend(self._raw(frame, frame.relation or "", m, index, len(stems), ""))
        for frame in ABOUT:
            if not self._applicable(frame, stem_set):
                continue
            pattern = self._cache.get((frame.name, ""))
            if (frame.name, "") not in self._cache:
                pattern = self._cache[(frame.name, "")] = self._compile(frame, None)
            if pattern is not None:
                m = pattern.match(text)
                if m is not None:
                    out.extend(self._raw(frame, "", m, index, len(stems), ""))
        return out

    @staticmethod
    def _raw(frame: Frame, relation: str, m: re.Match, index: dict[int, int], n: int,
             phrase: str) -> list[RawMatch]:
        def tok(a: int, b: int) -> tuple[int, int]:
            return index[a], index[b] if b in index else n

        base: dict[str, tuple[int, int]] = {}
        pairs: list[tuple[str, str, tuple[int, int]]] = []
        for name, value in m.groupdict().items():
            if value is None or name in ("P", "new", "T"):
                continue
            span = tok(m.start(name), m.end(name))
            if "_" in name:
                a, b = name.split("_")
                pairs.append((a, b, span))
            else:
                base[name] = span
        slot_tokens = sum(j - i for i, j in base.values()) + sum(j - i for _a, _b, (i, j) in pairs)
        literal = n - slot_tokens
        new = m.groupdict().get("new") is not None
        asked = (m.groupdict().get("T") or "").strip() or None
        if not pairs:
            return [RawMatch(frame, relation, base, literal, new, phrase, asked)]
        a, b, (i, j) = pairs[0]
        return [RawMatch(frame, relation, base | {a: (i, k), b: (k, j)}, literal, new, phrase, asked)
                for k in range(i + 1, j)]


def _literal_words(spec: str) -> list[str]:
    out = []
    for item in spec.split():
        if item.startswith("{") or item.endswith("?") or "|" in item:
            continue
        out.extend(_stems(item).split())
    return out


_TEMPLATE_COPULA = {"is", "was", "are", "were"}
_TEMPLATE_OPTIONAL = {"the", "a", "an"}


def _template_frames(relation: str, template: str) -> list[Frame]:
    """A schema template as frames: the statement, or the question of a Q/A template."""
    text = template.strip()
    kind: FrameKind = "fact"
    if text.startswith("Q:"):
        text = text[2:].split("A:")[0]
        kind = "query"
    elif "?" in text:
        text = text.split("?")[0]
        kind = "query"
    text = text.replace("{subject}", "qqsubj").replace("{object}", "qqobj")
    items: list[str] = []
    for word in words_of(text):
        if word == "qqsubj":
            items.append("{S}")
        elif word == "qqobj":
            items.append("{O}")
        elif word in _TEMPLATE_COPULA:
            items.append("{BE}")
        elif word in _TEMPLATE_OPTIONAL:
            items.append(f"{word}?")
        elif word == "'s":
            items.append("'s")
        else:
            items.append(word)
    if kind == "query" and "{S}" not in items and "{O}" not in items:
        return []
    if kind == "fact" and not ("{S}" in items and "{O}" in items):
        return []
    return [Frame(f"template:{relation}:{template}", " ".join(items), kind, relation=relation)]
