"""The default parser: offline, deterministic, driven by the schema.

A request is checked, tokenised and typo-corrected towards the schema's words; it is cut into
clauses (at sentence ends, semicolons, commas, "and", "but") where that gives more readable
pieces than the whole; each clause is read as an undo, an explain, or a fact/question through
the frames of ``interpreter.frames``. Every reading links its slots to the KG, and the reading
with the best score wins: links that fit the relation's types beat type clashes, linked names
beat new names, more specific frames beat telegraphic ones. A clause no frame can read becomes a
note (with the closest relations when it names one the schema lacks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from oneedit.core import (
    EditIntent,
    Entity,
    Mention,
    ParseError,
    ParseResult,
    SourceLine,
    UnknownRelationError,
)
from interpreter import lexicon as lx
from interpreter.frames import Frame, Grammar, RawMatch
from interpreter.linking import EntityIndex, EntityLinker, Link, LinkConfig
from interpreter.relations import RelationLexicon
from interpreter.resolve import orient
from interpreter.text import MAX_CHARS, Token, Tokens, check_input, fold, stem, tokenize

#: Pieces a clause may span when cut points fall inside names ("Washington, D.C.").
MAX_PIECES = 5
#: What each word left unread costs, and what each read clause costs, against readings scored in
#: [0, 1] (see ``_segment``).
UNREAD_PER_WORD, CLAUSE_COST = 0.1, 0.5
#: Cutting after "and" costs a little, after a bare comma more (see ``_pieces``).
AND_CUT_COST, COMMA_CUT_COST = 0.05, 0.3
WEAK_WEIGHT, TEMPLATE_BONUS, LITERAL_BONUS, COMPOSITE_WEIGHT = 0.85, 0.005, 0.01, 0.98
_BOUNDARY_WORDS = {"and", "but", "then", "plus"}
_BOUNDARY_PUNCT = {".", "?", "!", ";", ",", ":"}


@dataclass
class Flags:
    """What the words around a clause say about it."""

    question: bool = False
    retract: bool = False
    replace: bool = False
    command: str | None = None   # "retract" / "assert": the clause began with such a command


@dataclass
class Reading:
    op: str
    relation: str | None
    subject: tuple[Mention, ...] | None
    object: tuple[Mention, ...] | None
    score: float
    confidence: float
    notes: list[str] = field(default_factory=list)

    def key(self) -> tuple:
        def ids(ms):
            return None if ms is None else tuple(m.id or m.text.casefold() for m in ms)

        return (self.op, self.relation, ids(self.subject), ids(self.object))


@dataclass
class ClauseResult:
    intents: list[EditIntent]
    score: float
    note: str = ""
    unknown_relation: tuple[str, list[str]] | None = None


class RuleParser:
    """Text -> intents with the schema's phrases and templates and the KG's names."""

    def __init__(self, schema, index: EntityIndex, *, link: LinkConfig | None = None,
                 max_chars: int = MAX_CHARS):
        self.lexicon = RelationLexicon(schema)
        self.grammar = Grammar(self.lexicon)
        self.linker = EntityLinker(index, self.lexicon, link)
        self.index = index
        self.max_chars = max_chars
        self.all_types = tuple(schema.types)
        vocab = self.lexicon.vocabulary()
        self._known = vocab | _grammar_words()
        self._targets = sorted(vocab)

    # -- entry point -----------------------------------------------------------------------
    def parse(self, text: str, *, source: SourceLine | None = None) -> ParseResult:
        """Intents of one request. Raises ``InputError`` for unusable text, and
        ``UnknownRelationError`` / ``ParseError`` when nothing in it can be read."""
        check_input(text, max_chars=self.max_chars)
        toks = tokenize(text)
        _refuse_code(text, toks)
        corrections = self._correct(toks)
        pieces, cut_costs = _pieces(toks)
        if not pieces:
            raise ParseError(f"Nothing to parse in {text!r}.",
                             hint='Write a request such as "Lyon is now the capital of France".')
        results = self._segment(toks, pieces, cut_costs, corrections)
        intents = [replace(i, source=source) for r in results for i in r.intents]
        notes = [r.note for r in results if r.note]
        if not intents:
            raise self._failure(text, results)
        return ParseResult(text=text, intents=tuple(intents), notes=tuple(notes), parser="rules",
                           source=source)

    def _failure(self, text: str, results: list[ClauseResult]) -> Exception:
        unknown = [r.unknown_relation for r in results if r.unknown_relation]
        if unknown:
            words, near = unknown[0]
            shown = ", ".join(self.lexicon.describe(r) for r in near)
            return UnknownRelationError(
                f"No relation for {words!r}; closest: {shown}.",
                hint="Say it with one of the schema's relations (`oneedit kg stats --json` lists "
                     "them), or add the relation to the workspace's schema.yaml.",
                details={"relation": words, "closest": near, "text": text})
        notes = [r.note for r in results if r.note]
        return ParseError(
            f"Could not read {_short(text)!r} as a fact, question, undo or explain request.",
            hint='Try a form like "Lyon is the capital of France", "What is the capital of France?", '
                 '"Tim Cook is no longer the CEO of Apple", "undo my last edit" or "show the history '
                 'of France"; put names the KG does not know in quotes.',
            details={"text": text, "notes": notes})

    # -- typos -----------------------------------------------------------------------------
    def _correct(self, toks: Tokens) -> dict[int, float]:
        """Replace misspelt schema words ("captial") by the word; returns {token: similarity}."""
        out: dict[int, float] = {}
        for i, t in enumerate(toks.items):
            w = t.norm
            if t.quoted is not None or not w.isalpha() or w in self._known:
                continue
            if len(w) <= 4 and (i == 0 or (len(w) == 2 and i <= 2)):
                fw = self._function_word(w)  # "wat is …", "who si …": the clause's opening words
                if fw is not None and not self.index.match_mention(w, limit=1, cutoff=0.95):
                    toks.items[i] = Token(t.text, fw, stem(fw), t.start, t.end)
                    out[i] = 0.95
                    continue
            if len(w) < 3:
                continue
            hit = self._nearest_word(w)
            if hit is None or stem(hit[0]) == t.stem:
                continue  # no near word, or only an inflection of it ("founders")
            word, sim = hit
            ents = self.index.match_mention(w, limit=3, cutoff=0.85)
            if any(w in m.matched.casefold().split() or m.how in ("id", "label", "alias") for m in ents):
                continue  # a word of a name in the KG, not a misspelt schema word
            toks.items[i] = Token(t.text, word, stem(word), t.start, t.end)
            out[i] = sim
        return out

    def _function_word(self, w: str) -> str | None:
        """A question or function word typed with one letter wrong, missing or swapped ("wat",
        "waht", "si"), by rapidfuzz's edit distance; the first letter must match."""
        for cand in _FUNCTION_TARGETS:
            if cand[0] == w[0] and len(cand) >= 2 and abs(len(cand) - len(w)) <= 1 and OSA.distance(w, cand) == 1:
                return cand
        if len(w) == 2 and w[::-1] in _FUNCTION_TARGETS:
            return w[::-1]  # "si" for "is"
        return None

    def _nearest_word(self, w: str) -> tuple[str, float] | None:
        if len(w) >= 6:
            hit = process.extractOne(w, self._targets, scorer=fuzz.ratio, score_cutoff=80)
            if hit is not None and len(hit[0]) >= 6:
                return hit[0], hit[1] / 100
        # Short words: only a swap of two neighbouring letters ("bron" -> "born", "coe" -> "ceo").
        for cand in self._targets:
            if len(cand) == len(w) and sorted(cand) == sorted(w) and OSA.distance(w, cand) == 1:
                return cand, 0.9
        return None

    # -- cutting a request into clauses ----------------------------------------------------
    def _segment(self, toks: Tokens, pieces: list[list[int]], cut_costs: list[float],
                 corrections: dict[int, float]) -> list[ClauseResult]:
        n = len(pieces)
        # best[j]: (score, results, antecedents, command) for pieces[:j]; ``command`` is the
        # token of the command verb the last clause began with ("Set"), which a following clause
        # may leave out: "Set Apple's CEO to X and Google's CEO to Y".
        best: list[tuple[float, list[ClauseResult], list[Entity], int | None] | None] = [None] * (n + 1)
        best[0] = (0.0, [], [], None)
        for j in range(1, n + 1):
            for i in range(max(0, j - MAX_PIECES), j):
                prev = best[i]
                if prev is None:
                    continue
                span = list(range(pieces[i][0], pieces[j - 1][-1] + 1))
                res = self._clause(toks, span, corrections, prev[2])
                command = _command_token(toks, span)
                if not res.intents and prev[3] is not None and command is None:
                    shared = self._clause(toks, [prev[3], *span], corrections, prev[2])
                    if shared.intents:
                        text = _span_text(toks, span)
                        shared.intents = [replace(x, text=text) for x in shared.intents]
                        res, command = shared, prev[3]
                # Each clause must pay for itself: cutting a sentence in two only wins when both
                # halves read better than the whole ("Antigua and Barbuda" stays one name).
                gain = (res.score - CLAUSE_COST if res.intents else
                        -UNREAD_PER_WORD * len(span) if res.note else 0.0)
                total = prev[0] + gain - cut_costs[i]
                if best[j] is None or total > best[j][0] + 1e-9:  # type: ignore[index]
                    ante = _antecedents(res.intents) + prev[2]
                    best[j] = (total, prev[1] + [res], ante, command if res.intents else None)
        assert best[n] is not None
        return best[n][1]

    # -- one clause ------------------------------------------------------------------------
    def _clause(self, toks: Tokens, span: list[int], corrections: dict[int, float],
                antecedents: list[Entity]) -> ClauseResult:
        span = _drop_asides(toks, span)
        words = [i for i in span if not (toks[i].is_punct and toks[i].norm != "?")]
        flags = Flags(question=any(toks[i].norm == "?" for i in span))
        idx = [i for i in words if toks[i].norm != "?"]
        idx = _strip_words(toks, _strip_words(toks, idx, lx.FILLERS, anywhere=True), lx.EDGE_FILLERS)
        if not idx or all(toks[i].norm in _INTERJECTIONS for i in idx):
            return ClauseResult([], 0.0)
        text = toks.text[toks[idx[0]].start:toks[idx[-1]].end]
        norms = [toks[i].norm for i in idx]
        undo = _undo(norms)
        if undo is not None:
            return ClauseResult([replace(undo, text=text)], 1.0)
        explained = self._explain(toks, idx, corrections, antecedents, text)
        if explained is not None:
            return explained
        res = self._statement(toks, idx, corrections, antecedents, flags)
        if res.intents:
            res.intents = [replace(i, text=text) for i in res.intents]
            return res
        if not res.note:
            res.note = f"Could not read {_short(text)!r}: no pattern of the schema fits it."
        return res

    def _statement(self, toks: Tokens, idx: list[int], corrections: dict[int, float],
                   antecedents: list[Entity], flags: Flags) -> ClauseResult:
        norms = [toks[i].norm for i in idx]
        n = _starts_with(norms, lx.QUERY_COMMANDS)
        if n and n < len(norms) and norms[n] in lx.QUESTION_WORDS:
            # an embedded question ("can you tell me who runs Nvidia"): the question itself, in
            # question order ("do you know where Einstein was born" -> "where was Einstein born")
            idx, norms = idx[n:], norms[n:]
            k = next((k for k in range(2, len(norms)) if norms[k] in _EMBEDDED_BE), None)
            if k is not None:
                idx = [idx[0], idx[k], *idx[1:k], *idx[k + 1:]]
                norms = [toks[i].norm for i in idx]
        if norms and (norms[0] in lx.QUESTION_WORDS or norms[0] in lx.YES_NO_STARTS or
                      _starts_with(norms, lx.QUERY_COMMANDS)):
            flags.question = True
        readings: dict[tuple, Reading] = {}
        notes: list[str] = []
        # A leading command ("remove the fact that …", "add: …") is read both ways: stripped,
        # and as part of a command frame ("remove Tim Cook as CEO of Apple").
        variants = []
        stripped, cmd_flags = self._commands(toks, idx, flags)
        if stripped is not None:
            variants.append((stripped, cmd_flags))
        variants.append((idx, replace(flags)))
        for v_idx, v_flags in variants:
            v_idx = self._modifiers(toks, v_idx, v_flags, notes)
            if not v_idx:
                continue
            stems = [toks[i].stem for i in v_idx]
            for raw in self.grammar.match(stems):
                for reading in self._readings(raw, toks, v_idx, corrections, antecedents, v_flags):
                    k = reading.key()
                    if k not in readings or reading.score > readings[k].score:
                        readings[k] = reading
        if not readings:
            text = toks.text[toks[idx[0]].start:toks[idx[-1]].end]
            for v_idx, _f in variants:
                unknown = self._unknown_relation(toks, v_idx, antecedents)
                if unknown:
                    words, near = unknown
                    shown = ", ".join(self.lexicon.describe(r) for r in near)
                    note = f"Could not read {_short(text)!r}: no relation for {words!r}; closest: {shown}."
                    return ClauseResult([], 0.0, note, unknown)
            return ClauseResult([], 0.0, f"Could not read {_short(text)!r}: no pattern of the schema fits it.")
        best = max(readings.values(), key=lambda r: r.score)
        if notes:
            best.notes.extend(notes)
        return ClauseResult(self._intents(best), best.score)

    # -- words around the facts ------------------------------------------------------------
    def _commands(self, toks: Tokens, idx: list[int], flags: Flags) -> tuple[list[int] | None, Flags]:
        """The clause without "remove the fact that", "it is not true that", "add:", "… is
        false", and the flags that gives; ``None`` when it starts with no such command."""
        norms = [toks[i].norm for i in idx]
        out = replace(flags)
        for words, command in ((lx.RETRACT_COMMANDS, "retract"), (lx.ASSERT_COMMANDS, "assert")):
            n = _starts_with(norms, words)
            if not n:
                continue
            out.command = command
            rest = norms[n:]
            k = 0
            while k < len(rest) and k < 2 and rest[k] in ("the", "a", "this", "that", "following"):
                k += 1
            if k < len(rest) and rest[k] in lx.FACT_NOUNS:
                k += 1
                if k < len(rest) and rest[k] in ("that", "saying", "about"):
                    k += 1
                return idx[n + k:], out
            if rest and rest[0] == "that":
                return idx[n + 1:], out
            return idx[n:], out
        line = " ".join(norms) + " "
        m = re.match(r"^(?:it )?(?:is|was|s) (?:not true|false|wrong|incorrect|untrue|not correct|"
                     r"not the case|no longer true|no longer the case) that ", line)
        if m:
            out.command = "retract"
            return idx[len(m.group().split()):], out
        # "X is the CEO of Y, remove it": a statement followed by an order to remove it
        m = re.search(r" (?:(?:please|so|and|just) )?(?:remove|delete|drop|retract|erase) (?:it|that|this)"
                      r"(?: (?:please|from the (?:graph|kg)))?$", " " + " ".join(norms))
        if m and len(m.group().split()) < len(norms):
            out.command = "retract"
            return idx[:len(norms) - len(m.group().split())], out
        m = re.search(r" (?:is|was|are) (?:" + "|".join(re.escape(w) for w in lx.FALSE_WORDS) + r")$",
                      " " + " ".join(norms))
        if m and norms[0] == "that":
            out.command = "retract"
            return idx[1:len(norms) - len(m.group().split())], out
        return None, out

    def _modifiers(self, toks: Tokens, idx: list[int], flags: Flags, notes: list[str]) -> list[int]:
        """Remove "no longer", "not … anymore", "now", "actually", "instead of X" and set the
        flags they mean."""
        norms = [toks[i].norm for i in idx]
        cut = None
        for marker in lx.PREVIOUS_MARKERS:
            words = marker.split()
            for k in range(1, len(norms) - len(words)):
                if norms[k:k + len(words)] == words:
                    cut = (k, k + len(words))
                    break
            if cut:
                break
        if cut is None:
            # "…, not Paris": a negation after a comma names the value being replaced.
            for k in range(1, len(norms) - 1):
                if norms[k] == "not" and idx[k] > 0 and toks[idx[k] - 1].norm == ",":
                    cut = (k, k + 1)
                    break
        if cut is not None:
            old = toks.span(idx[cut[1]], idx[-1] + 1)
            notes.append(f"replaces {old!r}")
            flags.replace = True
            idx = idx[:cut[0]]
        idx = _strip_time(toks, idx)
        before = len(idx)
        idx = _strip_words(toks, idx, lx.NEGATIONS, anywhere=True)
        if len(idx) != before:
            flags.retract = True
        before = len(idx)
        idx = _strip_words(toks, idx, lx.REPLACE_MARKERS, anywhere=True)
        if len(idx) != before:
            flags.replace = True
        return idx

    def _unknown_relation(self, toks: Tokens, idx: list[int], antecedents: list[Entity]):
        """``(words, closest relations)`` when the clause names a relation the schema lacks:
        "France's favourite colour is blue", "Einstein lived in Berlin"."""
        norms = [toks[i].norm for i in idx]
        line = " ".join(norms)
        known = {p.key for p in self.lexicon.phrases}
        for pattern in _UNKNOWN_PATTERNS:
            m = pattern.match(line)
            if not m:
                continue
            rel = m.group("R").strip().removeprefix("the ").strip()
            if not self._relation_words(rel, known):
                continue
            subj = _original(toks, idx, line, m.start("S"), m.end("S"))
            if subj.lower() in lx.PRONOUNS:
                ok = bool(antecedents)
            else:
                link = self.linker.link(subj, self.all_types)
                ok = link is not None and all(x.status != "new" for x in link.mentions)
            if ok:
                return rel, self.lexicon.closest(rel)
        # "<name> <a few words> <name>": two known names around words that name no relation.
        if len(norms) <= 12:
            for i in range(1, len(norms) - 1):
                for j in range(i + 1, min(i + 4, len(norms))):
                    rel = " ".join(norms[i:j])
                    if not self._relation_words(rel, known):
                        continue
                    ends = (toks.span(idx[0], idx[i - 1] + 1), toks.span(idx[j], idx[-1] + 1))
                    links = [self.linker.link(e, self.all_types) for e in ends]
                    if all(lk is not None and all(x.status == "linked" for x in lk.mentions) for lk in links):
                        return rel, self.lexicon.closest(rel)
        return None

    @staticmethod
    def _relation_words(rel: str, known: set[str]) -> bool:
        """Could ``rel`` be a relation's name the schema lacks (not a clause, not a phrase it has)?"""
        words = rel.split()
        if not words or len(words) > 4 or any(w in lx.CLAUSE_WORDS for w in words):
            return False
        return " ".join(stem(w) for w in words) not in known

    # -- readings --------------------------------------------------------------------------
    def _readings(self, raw: RawMatch, toks: Tokens, idx: list[int], corrections: dict[int, float],
                  antecedents: list[Entity], flags: Flags) -> list[Reading]:
        frame = raw.frame
        op = _op(frame, flags, raw.new)
        if op is None:
            return []
        if raw.event_op and op != "query" and (op == "assert" or raw.event_op == "retract"):
            op = raw.event_op  # "Jensen Huang quit Nvidia": the verb says what happens
        rel = raw.relation or None
        if rel is not None and rel not in self.lexicon.relations:
            return []
        cache: dict = {}
        links: dict[str, Link] = {}
        for slot, (i, j) in raw.slots.items():
            if slot == "X":
                continue
            if rel is None:
                types = self.all_types
            else:
                types = self.lexicon.domain(rel) if slot == "S" else self.lexicon.range(rel)
            sub = idx[i:j]
            quoted = len(sub) == 1 and toks[sub[0]].quoted is not None
            name = toks.span(sub[0], sub[-1] + 1)
            # In mixed-case text names are capitalised: "Einstein lived" is not a new name.
            link = self.linker.link(name, types, quoted=quoted, antecedents=antecedents, cache=cache,
                                    cased=toks.cased)
            if link is None or (rel is None and any(m.status == "new" for m in link.mentions)):
                return []
            links[slot] = link
        if rel is None and frame.name.startswith("isa"):
            rel = self._isa_relation(links, raw)
            if rel is None:
                return []
        if raw.asked_type and rel is not None and not self._asked_type_fits(raw, rel):
            return []
        slot_tokens = {k for s, (i, j) in raw.slots.items() for k in idx[i:j]}
        rel_conf = 1.0
        for k, sim in corrections.items():
            if k in idx and k not in slot_tokens:
                rel_conf *= sim
        score = rel_conf
        for link in links.values():
            score *= link.score
        if frame.weak:
            score *= WEAK_WEIGHT
        if rel is not None and self.lexicon.composite(rel):
            score *= COMPOSITE_WEIGHT  # a base relation reads the same words more directly
        score += LITERAL_BONUS * raw.literal + (TEMPLATE_BONUS if frame.relation else 0.0)
        subject = links["S"].mentions if "S" in links else None
        obj = links["O"].mentions if "O" in links else None
        notes = [lk.note for lk in links.values() if lk.note]
        if "X" in raw.slots:
            i, j = raw.slots["X"]
            notes.append(f"replaces {toks.span(idx[i], idx[j - 1] + 1)!r}")
        if frame.kind == "all" and rel is not None and self.lexicon.canonical(rel)[1]:
            return []  # "every value" needs the stored direction: (X, capital, *), not (*, capital, X)
        op, rel, subject, obj = orient(self.lexicon, op, rel, subject, obj, notes)
        mentions = [*(subject or ()), *(obj or ())]
        conf = rel_conf * min((m.confidence for m in mentions), default=1.0)
        return [Reading(op, rel, subject, obj, score, conf, notes)]

    def _isa_relation(self, links: dict[str, Link], raw: RawMatch) -> str | None:
        """"Einstein was a physicist": the one stored relation from the subject's type to the
        object's type (``None`` when there is none, or several)."""
        s = links["S"].mentions[0]
        o = links["O"].mentions[0]
        if o.entity is None:
            return None
        s_type = s.entity.type if s.entity is not None else None
        if raw.asked_type:
            t = self.lexicon.type_words.get(raw.asked_type)
            if s_type is not None and t != s_type:
                return None
            s_type = s_type or t
        fits = [r for r in self.lexicon.relations
                if not self.lexicon.composite(r) and not self.lexicon.canonical(r)[1]
                and o.entity.type in self.lexicon.range(r)
                and (s_type is None or s_type in self.lexicon.domain(r))]
        return fits[0] if len(fits) == 1 else None

    def _asked_type_fits(self, raw: RawMatch, rel: str) -> bool:
        """"Which *continent* is Egypt in?": the answer's type must be the relation's."""
        t = self.lexicon.type_words.get(raw.asked_type or "")
        if t is None:
            return True
        if "O" not in raw.slots:
            return t in self.lexicon.range(rel)
        if "S" not in raw.slots:
            return t in self.lexicon.domain(rel)
        return True

    def _intents(self, r: Reading) -> list[EditIntent]:
        out = []
        for s in r.subject or (None,):
            for o in r.object or (None,):
                out.append(EditIntent(op=r.op, subject=s, relation=r.relation, object=o,  # type: ignore[arg-type]
                                      confidence=round(r.confidence, 4), notes=tuple(r.notes)))
        return out

    # -- explain ---------------------------------------------------------------------------
    def _explain(self, toks: Tokens, idx: list[int], corrections: dict[int, float],
                 antecedents: list[Entity], text: str) -> ClauseResult | None:
        norms = [toks[i].norm for i in idx]
        line = " ".join(norms)
        m = _EDIT_REF.match(line)
        if m:
            return ClauseResult([EditIntent(op="explain", about="edit", edit=int(m.group("n")), text=text)], 1.0)
        m = _HISTORY.match(line)
        if m:
            group = next(g for g in ("rest", "rest2", "rest3") if m.group(g) is not None)
            rest = idx[len(line[:m.start(group)].split()):][:len(m.group(group).split())]
            target = self._target(toks, rest, corrections, antecedents)
            if target is None:
                return None
            intent = replace(target, op="explain", about="history", text=text)
            return ClauseResult([intent], 1.0)
        m = _PROVENANCE.match(line)
        if m:
            start = len(line[:m.start("rest")].split())
            rest = idx[start:start + len(m.group("rest").split())]
            res = self._statement(toks, rest, corrections, antecedents, Flags())
            if res.intents:
                return ClauseResult([replace(i, op="explain", about="fact", text=text) for i in res.intents],
                                    res.score)
        n = _starts_with(norms, lx.WHY_WORDS)
        if not n:
            return None
        rest_norms = norms[n:]
        about = "fact"
        skip = 0
        if rest_norms and rest_norms[0] in ("does", "do", "did"):
            after = rest_norms[1:]
            for nouns, kind in ((lx.MODEL_NOUNS, "model"), (lx.KG_NOUNS, "fact")):
                k = _starts_with(after, nouns)
                if k and _starts_with(after[k:], lx.SAY_VERBS):
                    about = kind
                    skip = 1 + k + _starts_with(after[k:], lx.SAY_VERBS)
                    break
        if skip and skip < len(rest_norms) and rest_norms[skip] == "that":
            skip += 1
        if not skip and rest_norms and rest_norms[0] == "that":
            skip = 1
        rest = idx[n + skip:]
        if not rest:
            return None
        flags = Flags()
        res = self._statement(toks, rest, corrections, antecedents, flags)
        if not res.intents:
            return ClauseResult([], 0.0, res.note or f"Could not read {_short(text)!r}.", res.unknown_relation)
        intents = [replace(i, op="explain", about=about, text=text) for i in res.intents]
        return ClauseResult(intents, res.score)

    def _target(self, toks: Tokens, idx: list[int], corrections: dict[int, float],
                antecedents: list[Entity]) -> EditIntent | None:
        """What a history request is about: an entity, or a fact ("the capital of France")."""
        if not idx:
            return None
        name = toks.span(idx[0], idx[-1] + 1)
        quoted = len(idx) == 1 and toks[idx[0]].quoted is not None
        link = self.linker.link(name, self.all_types, quoted=quoted, antecedents=antecedents)
        if link is not None and len(link.mentions) == 1 and link.mentions[0].status != "new":
            m = link.mentions[0]
            return EditIntent(op="explain", subject=m, confidence=m.confidence)
        res = self._statement(toks, idx, corrections, antecedents, Flags(question=True))
        if res.intents:
            return res.intents[0]
        if link is not None and len(link.mentions) == 1:
            return EditIntent(op="explain", subject=link.mentions[0], confidence=link.mentions[0].confidence)
        return None


# -- helpers ---------------------------------------------------------------------------------
def _grammar_words() -> set[str]:
    words: set[str] = set()
    for name in dir(lx):
        value = getattr(lx, name)
        if isinstance(value, (tuple, frozenset)):
            for phrase in value:
                words.update(fold(phrase).split())
        elif isinstance(value, dict):
            for phrase in value:
                words.update(fold(phrase).split())
    return words


def _short(text: str, n: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _starts_with(norms: list[str], phrases) -> int:
    """Length of the longest phrase of ``phrases`` that ``norms`` starts with (0 if none)."""
    best = 0
    for p in phrases:
        words = fold(p).split()
        if len(words) > best and norms[:len(words)] == words:
            best = len(words)
    return best


def _strip_words(toks: Tokens, idx: list[int], phrases, *, anywhere: bool = False) -> list[int]:
    """Drop the words of ``phrases`` at the start and end of the clause (or ``anywhere``)."""
    seqs = sorted((fold(p).split() for p in phrases), key=len, reverse=True)
    norms = [toks[i].norm for i in idx]
    keep = [True] * len(norms)
    if anywhere:
        k = 0
        while k < len(norms):
            hit = next((sq for sq in seqs if norms[k:k + len(sq)] == sq), None)
            if hit:
                keep[k:k + len(hit)] = [False] * len(hit)
                k += len(hit)
            else:
                k += 1
    else:
        a, b = 0, len(norms)
        while a < b:
            hit = next((sq for sq in seqs if norms[a:a + len(sq)] == sq and a + len(sq) <= b), None)
            if not hit:
                break
            a += len(hit)
        while b > a:
            hit = next((sq for sq in seqs if b - len(sq) >= a and norms[b - len(sq):b] == sq), None)
            if not hit:
                break
            b -= len(hit)
        keep = [a <= k < b for k in range(len(norms))]
    return [i for k, i in enumerate(idx) if keep[k]]


#: Question and function words whose typos are read as the word ("wat" -> "what", "si" -> "is").
_FUNCTION_TARGETS = ("what", "who", "where", "which", "when", "whose", "how", "is", "are", "was", "were",
                     "does", "did")

_MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december", "today", "yesterday", "tomorrow", "now", "last", "next",
           "this", "year", "month", "week", "recently"}


def _strip_time(toks: Tokens, idx: list[int]) -> list[int]:
    """Drop a trailing time ("since 1990", "as of June 2024", "in 2023")."""
    norms = [toks[i].norm for i in idx]
    times = [w.split() for w in lx.TIME_WORDS]
    for k in range(len(norms) - 1, 0, -1):  # the last one: "in Tokyo since 1946" keeps "in Tokyo"
        for t in times:
            if norms[k:k + len(t)] == t:
                tail = norms[k + len(t):]
                if tail and len(tail) <= 4 and (any(w.isdigit() for w in tail) or tail[0] in _MONTHS
                                                or (t[0] == "since" and tail[-1] in ("ago", "then"))):
                    return idx[:k]
    return idx


_CODE_CHARS = re.compile(r"[{}<>\[\]=*$\\|`^~]|\b(?:https?|urn):|--\s*$|;\s*--")


def _refuse_code(text: str, toks: Tokens) -> None:
    """Query or program text (SPARQL, Cypher, SQL) is not a request: say so instead of reading
    fragments of it as names. A quoted name may hold any of these characters."""
    outside = text
    for t in toks.items:
        if t.quoted is not None:
            outside = outside.replace(toks.text[t.start:t.end], " ")
    m = _CODE_CHARS.search(outside)
    if m:
        raise ParseError(
            f"{_short(text)!r} looks like code or a query ({m.group().strip()!r}), not a request.",
            hint="Write the request in words; put a name that contains such characters in quotes. "
                 "To query the KG directly, use `oneedit kg query`.",
            details={"text": text, "at": m.start()})


def _pieces(toks: Tokens) -> tuple[list[list[int]], list[float]]:
    """Token runs between possible clause boundaries (punctuation, sentence ends, "and", "but"),
    and for each run what cutting before it costs: nothing after a sentence end, a little after
    "and", more after a bare comma (commas sit inside names and appositions)."""
    pieces: list[list[int]] = []
    costs: list[float] = []
    cur: list[int] = []
    gap: set[str] = set()

    def close() -> None:
        nonlocal cur, gap
        if cur:
            costs.append(_cut_cost(gap) if pieces else 0.0)
            pieces.append(cur)
            gap = set()
        cur = []

    for i, t in enumerate(toks.items):
        if t.quoted is None and (t.norm in _BOUNDARY_PUNCT or t.norm in _BOUNDARY_WORDS):
            if t.norm == "?" and cur:
                cur.append(i)  # keep the question mark with its clause
            close()
            gap.add(t.norm)
            continue
        cur.append(i)
        possessive = i + 1 < len(toks.items) and toks.items[i + 1].norm == "'s"  # "Alphabet Inc.'s CEO"
        if t.text.endswith(".") and t.quoted is None and not possessive:
            close()
            gap.add(".")
    close()
    return pieces, costs


#: The verb an embedded question moves to the front ("… where Einstein was born").
_EMBEDDED_BE = {"is", "was", "are", "were"}

#: Words that open an aside between commas whatever follows ("Kyiv, where the summit was held, …").
_RELATIVES = {"who", "whom", "whose", "which", "where", "when"}
#: Words that open an aside between commas when no verb follows ("Siemens, the engineering group, …",
#: "Canberra, not Sydney, …").
_ASIDE_STARTS = {"the", "a", "an", "not", "formerly", "once", "now", "also"}


def _drop_asides(toks: Tokens, span: list[int]) -> list[int]:
    """The clause without asides between two commas: appositions ("Siemens, the engineering
    group, is …") and relative clauses ("Tim Cook, who everyone knows, is …")."""
    commas = [k for k, i in enumerate(span) if toks[i].norm == "," and toks[i].quoted is None]
    if len(commas) < 2:
        return span
    drop: set[int] = set()
    for a, b in zip(commas, commas[1:], strict=False):
        seg = [toks[i].norm for i in span[a + 1:b]]
        if not seg or a == 0:
            continue
        if seg[0] in _RELATIVES or (seg[0] in _ASIDE_STARTS and not (set(seg[1:]) & lx.CLAUSE_WORDS)):
            drop.update(span[a:b + 1])
    return [i for i in span if i not in drop] if drop else span


_SHARED_COMMANDS = frozenset(w for w in (*lx.REPLACE_COMMANDS, *lx.ASSERT_COMMANDS, *lx.RETRACT_COMMANDS)
                             if " " not in w)


def _command_token(toks: Tokens, span: list[int]) -> int | None:
    """The token of the one-word command verb a clause begins with ("set", "add", "remove")."""
    first = next((i for i in span if not toks[i].is_punct and toks[i].norm not in _BOUNDARY_WORDS), None)
    return first if first is not None and toks[first].norm in _SHARED_COMMANDS else None


def _span_text(toks: Tokens, span: list[int]) -> str:
    words = [i for i in span if not toks[i].is_punct and toks[i].norm not in _BOUNDARY_WORDS]
    return toks.text[toks[words[0]].start:toks[words[-1]].end] if words else ""


def _cut_cost(gap: set[str]) -> float:
    if gap & {".", "?", "!", ";"}:
        return 0.0
    if gap & _BOUNDARY_WORDS:
        return AND_CUT_COST
    return COMMA_CUT_COST if "," in gap or ":" in gap else 0.0


def _antecedents(intents: list[EditIntent]) -> list[Entity]:
    out: list[Entity] = []
    for i in intents:
        for m in (i.subject, i.object):
            if m is not None and m.entity is not None and m.entity not in out:
                out.append(m.entity)
    return out


def _op(frame: Frame, flags: Flags, new: bool) -> str | None:
    if frame.kind in ("query", "about", "yesno"):
        return "query" if frame.op is None and flags.command is None else None
    if flags.question and flags.command is None:
        return "query"
    if frame.op == "retract" or flags.retract or flags.command == "retract":
        return "retract"
    if frame.kind == "all":
        return None
    if frame.op == "replace" or flags.replace or new:
        return "replace"
    return "assert"


def _original(toks: Tokens, idx: list[int], line: str, a: int, b: int) -> str:
    """The original text of the words at characters ``a:b`` of ``" ".join(norms)``."""
    first = len(line[:a].split())
    last = len(line[:b].split())
    return toks.span(idx[first], idx[max(first, last - 1)] + 1)


def _undo(norms: list[str]) -> EditIntent | None:
    """ "undo my last edit", "revert edit 42", "roll back the last 3 changes" -> an undo intent."""
    lead = 0
    while lead < len(norms) - 1 and norms[lead] in _UNDO_LEAD:
        lead += 1
    norms = norms[lead:]
    if norms and norms[0] in lx.UNDO_SPLIT_VERBS and "back" in norms[1:5]:
        k = norms.index("back", 1)  # "roll that back" -> "roll back that"
        norms = [norms[0], "back", *norms[1:k], *norms[k + 1:]]
    n = _starts_with(norms, lx.UNDO_VERBS)
    if not n:
        return None
    rest = norms[n:]
    allowed = ({"my", "the", "that", "this", "your", "our", "it", "a", "of", "number", "no", "id",
                "one", "ones", "all", "please", "r", "most",
                # "revert what I just did", "put the graph back the way it was before my last change"
                "what", "i", "just", "did", "done", "made", "did", "graph", "kg", "knowledge", "way",
                "was", "before", "as", "to", "how"} | set(lx.EDIT_NOUNS)
               | {w for p in lx.LATEST_WORDS for w in p.split()} | set(lx.NUMBER_WORDS))
    numbers: list[int] = []
    for w in rest:
        if w.isdigit():
            numbers.append(int(w))
        elif w in lx.NUMBER_WORDS and w != "one":
            numbers.append(lx.NUMBER_WORDS[w])
        elif w not in allowed:
            return None
    latest = any(w in {x for p in lx.LATEST_WORDS for x in p.split()} for w in rest)
    if numbers and latest:
        return EditIntent(op="undo", count=max(1, numbers[0]))
    if numbers:
        return EditIntent(op="undo", edit=numbers[0])
    return EditIntent(op="undo", count=1)


_INTERJECTIONS = {w for p in lx.INTERJECTIONS for w in p.split()}
_UNDO_LEAD = {"actually", "ok", "okay", "no", "oops", "wait", "sorry", "please", "just", "now", "so",
              "hmm", "ah", "oh", "then", "well", "can", "could", "would", "you", "i", "want", "to",
              "need", "let", "us", "me", "go", "ahead", "and"}
_SHOW = "|".join(re.escape(fold(w)) for w in lx.SHOW_VERBS)
_HIST = "|".join(re.escape(fold(w)) for w in sorted(lx.HISTORY_NOUNS, key=len, reverse=True))
_BARE = "|".join(re.escape(fold(w)) for w in sorted(lx.BARE_HISTORY_NOUNS, key=len, reverse=True))
_HIST_PREP = "(?:of|for|about|on|to|behind|regarding|concerning|in)"
_HISTORY = re.compile(
    rf"^(?:(?:(?:{_SHOW})(?: me| us)? (?:the |a |all )?|the )(?:(?:full|complete|entire|whole|edit|revision|change) )?"
    rf"(?:{_HIST})|(?:{_BARE})) {_HIST_PREP}? ?(?P<rest>.+)$"
    rf"|^(?:who|what) (?:changed|edited|modified|updated|touched)(?: in)? (?P<rest2>.+)$"
    rf"|^how (?:did|has) (?P<rest3>.+?) change$")
_EDIT_REF = re.compile(
    rf"^(?:(?:explain|describe|{_SHOW})(?: me)? |what (?:was|is|did) |details of |why |what happened in )"
    rf"(?:the )?(?:edit|change|transaction|revision) (?:number |no |id |#)?(?P<n>\d+)(?: do| change| made)?$")

_PROVENANCE = re.compile(r"^(?:where|how) (?:did|does|do) (?:the (?:fact|claim|idea|statement|information) )?"
                         r"(?:that )?(?P<rest>.+) (?:come from|originate)$")
_BE = r"(?:is|was|are|were|s)"
_UNKNOWN_PATTERNS = [re.compile(p) for p in (
    rf"^(?:what|who|which|where) {_BE} (?:the )?(?P<R>.+?) (?:of|for) (?P<S>.+)$",
    rf"^(?:what|who|which|where) {_BE} (?P<S>.+?) 's (?P<R>.+)$",
    rf"^(?:the )?(?P<R>.+?) (?:of|for) (?P<S>.+?) {_BE} (?P<O>.+)$",
    rf"^(?P<S>.+?) 's (?P<R>.+?) {_BE} (?P<O>.+)$",
    rf"^(?P<O>.+?) {_BE} (?:the |a |an )(?P<R>.+?) (?:of|for) (?P<S>.+)$",
    rf"^(?P<O>.+?) {_BE} (?P<S>.+?) 's (?P<R>.+)$",
    rf"^(?P<O>.+?) {_BE} (?P<S>its|his|her|their) (?P<R>.+)$",
    rf"^(?P<S>its|his|her|their) (?P<R>.+?) {_BE} (?P<O>.+)$",
    rf"^(?:set|change|update|make) (?:the )?(?P<R>.+?) (?:of|for) (?P<S>.+?) (?:to|as|into) (?P<O>.+)$",
    rf"^(?:set|change|update|make) (?P<S>.+?) 's (?P<R>.+?) (?:to|as|into) (?P<O>.+)$",
    rf"^how (?P<R>(?!many\b|much\b)\w+) {_BE} (?P<S>.+)$",  # "how tall is X"
    rf"^(?:what|how) {_BE} (?:the )?(?P<R>.+?) (?:in|at) (?P<S>.+)$",  # "what's the weather in X"
)]
