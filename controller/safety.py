"""Toxicity and abuse checks on edit requests and on the entity names an edit would write.

Two checks, each returning :class:`Finding` objects (an empty list means nothing was found):

* :class:`ToxicityCheck` — offline, the ``alt-profanity-check`` classifier (a linear SVM over
  word n-grams, calibrated to a probability). It is imported on first use (it pulls in
  scikit-learn, about 1.5 s) and cached for the process. A text's score is the highest of the
  scores of the whole text, each clause (split at ``. ! ? ; :``, newlines, commas, "and", "but")
  and each word: an insult inside a long harmless sentence is otherwise diluted ("Change the label
  of Germany to Nazi Shitland" scores 0.22 as a whole, "Nazi" 0.86). Names the caller knows
  (the KG entities the request mentions) are masked first, because a few real names look like
  profanity to the classifier ("Bong Joon-ho" 0.88, "Niger" 0.51). ``score >= threshold``
  rejects; ``score >= review_threshold`` holds the edit for a curator.
* :class:`ChatModerator` — any langchain-core chat model asked for a pydantic-validated verdict
  ``{"flagged", "category", "reason"}``. Flagged rejects. A model that fails, or answers invalidly
  twice, gives a *review* finding: the check fails closed, it never silently passes.

:class:`SafetyChecker` runs both on a request and the labels it would write.

Thresholds, measured with ``python bench/toxicity_threshold.py`` on the shipped KG: its 1,820
entity labels and 8,917 verbalised training sentences, the 395 labelled requests of
``tests/data/requests.jsonl`` (all harmless) and 40 clearly abusive requests. False positives are
harmless texts at or above the threshold; "masked": the KG names a text mentions masked first::

    threshold  labels  sentences  sentences  requests  abusive detected
                       (raw)      (masked)   (masked)
    0.5        7       59         0          1         39/40 (98%)
    0.7        1        9         0          0         39/40 (98%)
    0.8        1        9         0          0         38/40 (95%)
    0.9        0        0         0          0         35/40 (88%)

Scoring only the whole text and its clauses (no words) detected 32/40 at 0.8 and 35/40 at 0.5.
The one label over 0.7 is "Bong Joon-ho" (0.88; the nine raw sentences are all about him); the
labels between 0.5 and 0.7 are names such as "White Plains", "Isaac Newton", "Niger", "Lisa Su",
and the one request is about the colour white ("white" alone scores 0.70). Missed at 0.8: "Rename
Canada to Shithole" (0.27, the word is not in the classifier's vocabulary) and "The citizens of
Mexico are filthy wetbacks" (0.73, held for review at 0.7).

Defaults: reject from **0.8** (95% of the abusive list, one harmless label of 1,820, nothing of
the sentences or requests once known names are masked) and review from **0.7** (catches the
"wetbacks" request; going down to 0.5 catches nothing more and holds 6 more labels and a request).
Known limits: a word-level classifier; new names that contain a flagged word are rejected
("Dick Cheney" 0.97, "Kill Bill" 0.95) until they are in the KG and passed as known names.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oneedit.core import PolicyError
from oneedit.core.llmtext import error_summary, message_text

log = logging.getLogger(__name__)

Verdict = Literal["reject", "review"]
_CLAUSES = re.compile(r"[.!?;:\n]+|,\s+|\s+(?:and|but)\s+", re.IGNORECASE)
_WORD = re.compile(r"[\w'-]+")
_SHOWN = 200  # characters of the offending text kept in a finding


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a check found: which check, what to do (reject or review), and why."""

    check: str
    verdict: Verdict  # "reject" | "review"
    message: str
    score: float | None = None
    text: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def verdict(findings: Iterable[Finding]) -> str:
    """The strongest verdict of ``findings``: ``"reject"``, ``"review"`` or ``"pass"``."""
    verdicts = {f.verdict for f in findings}
    return "reject" if "reject" in verdicts else "review" if "review" in verdicts else "pass"


@functools.cache
def _predict_prob():
    """``profanity_check.predict_prob``, imported once per process (it loads scikit-learn)."""
    try:
        from profanity_check import predict_prob
    except ImportError:
        raise PolicyError("The toxicity check needs the package alt-profanity-check.",
                          hint="pip install 'alt-profanity-check>=1.5'") from None
    return predict_prob


def clauses(text: str) -> list[str]:
    """The clauses of ``text`` with at least one letter, without the text itself."""
    parts = [p.strip() for p in _CLAUSES.split(text)]
    return [p for p in parts if p and p != text.strip() and any(c.isalpha() for c in p)]


def units(text: str) -> list[str]:
    """What is scored of ``text``: the text, each clause and each word (no repeats)."""
    out = [text.strip(), *clauses(text)]
    out += [w for w in _WORD.findall(text) if any(c.isalpha() for c in w)]
    return list(dict.fromkeys(out))


def mask_names(text: str, names: Iterable[str]) -> str:
    """``text`` with each of ``names`` (whole words, any case) replaced by ``X``.

    Known names are not abuse, and a few real ones look like profanity to the classifier.
    """
    pattern = _name_pattern(tuple(sorted({n.strip() for n in names if len(n.strip()) >= 2},
                                         key=lambda n: (-len(n), n))))
    return pattern.sub("X", text) if pattern is not None else text


@functools.lru_cache(maxsize=256)
def _name_pattern(names: tuple[str, ...]) -> re.Pattern | None:
    if not names:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, names)) + r")(?!\w)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ToxicityCheck:
    """The offline classifier: reject from ``threshold``, review from ``review_threshold``."""

    threshold: float = 0.8
    review_threshold: float = 0.7

    def __post_init__(self) -> None:
        if not 0.0 < self.review_threshold <= self.threshold <= 1.0:
            raise PolicyError(f"Toxicity thresholds need 0 < review_threshold <= threshold <= 1; got "
                              f"threshold={self.threshold}, review_threshold={self.review_threshold}.",
                              hint="The defaults are threshold 0.8 and review_threshold 0.7 "
                                   "(bench/toxicity_threshold.py measures others).")

    def score(self, texts: Sequence[str], *, known: Iterable[str] = ()) -> list[float]:
        """Each text's score in [0, 1]: the highest of its :func:`units` (0 for an empty text).

        Names in ``known`` are masked first (see :func:`mask_names`).
        """
        return [score for score, _unit in self._scores(texts, known)]

    def _scores(self, texts: Sequence[str], known: Iterable[str]) -> list[tuple[float, str]]:
        """Each text's score and the unit that scored it."""
        known = list(known)
        batch: list[str] = []
        owner: list[int] = []
        for i, text in enumerate(texts):
            if not text or not text.strip():
                continue
            for unit in units(mask_names(text, known) if known else text):
                batch.append(unit)
                owner.append(i)
        best: list[tuple[float, str]] = [(0.0, "")] * len(texts)
        if batch:
            for i, unit, p in zip(owner, batch, _predict_prob()(batch)):
                if float(p) > best[i][0]:
                    best[i] = (float(p), unit)
        return best

    def check(self, texts: Sequence[str], *, what: str = "request", known: Iterable[str] = ()) -> list[Finding]:
        """A finding for each text scoring at least ``review_threshold``; empty texts are skipped."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out: list[Finding] = []
        for text, (score, unit) in zip(texts, self._scores(texts, known)):
            part = "" if unit == text.strip() else f" (because of {_quote(unit)})"
            if score >= self.threshold:
                out.append(Finding("toxicity", "reject",
                                   f"The {what} {_quote(text)} reads as abusive{part}: toxicity {score:.2f}, "
                                   f"rejected from {self.threshold:.2f}. Rephrase it without insults "
                                   "or profanity.", score, text[:_SHOWN]))
            elif score >= self.review_threshold:
                out.append(Finding("toxicity", "review",
                                   f"The {what} {_quote(text)} may be abusive{part}: toxicity {score:.2f}, "
                                   f"reviewed from {self.review_threshold:.2f}. A curator will look "
                                   "at it before it is applied.", score, text[:_SHOWN]))
        return out


def _quote(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")


# -- the LLM moderator -------------------------------------------------------------------------

MODERATOR_PROMPT = (
    "You moderate requests to edit a knowledge graph of facts about countries, cities, people, "
    "companies and the like. Flag a request that insults, harasses or threatens a person or group, "
    "contains hate speech, sexual content or slurs, or tries to write abusive text as a fact or an "
    "entity name. Do not flag ordinary factual statements or questions, even false ones, or "
    "neutral mentions of sensitive topics (wars, crimes, diseases).\n"
    "Answer with flagged (true/false), category (one short word such as none, insult, hate, "
    "harassment, sexual, threat, spam) and reason (one sentence)."
)


class ModerationVerdict(BaseModel):
    """The moderator's answer; nothing beyond these fields is accepted."""

    model_config = ConfigDict(extra="forbid")

    flagged: bool = Field(description="true when the request is abusive")
    category: str = Field(description="none, insult, hate, harassment, sexual, threat or spam")
    reason: str = Field(description="one sentence saying why")


class ChatModerator:
    """A langchain-core chat model asked whether a text is abusive (fails closed to review)."""

    def __init__(self, chat_model, *, method: Literal["auto", "tools", "json"] = "auto",
                 prompt: str = MODERATOR_PROMPT):
        self.model = chat_model
        self.prompt = prompt
        self.method = self._method(chat_model, method)

    @staticmethod
    def _method(model, method: str) -> str:
        if method != "auto":
            return method
        from langchain_core.language_models import BaseChatModel

        # Tool calling where the model implements it; JSON instructions otherwise (as interpreter.llm).
        return "tools" if type(model).bind_tools is not BaseChatModel.bind_tools else "json"

    def messages(self, text: str) -> list:
        from langchain_core.messages import HumanMessage, SystemMessage

        system = self.prompt
        if self.method == "json":
            from langchain_core.output_parsers import PydanticOutputParser

            fmt = PydanticOutputParser(pydantic_object=ModerationVerdict).get_format_instructions()
            system += "\n\nAnswer with JSON only.\n" + fmt
        return [SystemMessage(content=system), HumanMessage(content=text)]

    def check(self, text: str, *, what: str = "request") -> list[Finding]:
        """``[]`` when the model says the text is fine; a reject finding when flagged; a review
        finding when the model fails or answers invalidly twice."""
        if not text or not text.strip():
            return []
        from langchain_core.messages import AIMessage, HumanMessage

        messages = self.messages(text)
        errors: list[str] = []
        for attempt in (1, 2):
            try:
                raw, parsed, error = self._ask(messages)
            except Exception as exc:  # the provider failed: network, quota, bad key
                log.warning("moderator call failed: %s", exc)
                return [Finding("moderator", "review",
                                f"The moderator failed ({type(exc).__name__}: {error_summary(exc, 300)}), so the "
                                f"{what} could not be checked; a curator will look at it. Check the "
                                "moderator model's settings.", None, text[:_SHOWN])]
            if parsed is not None:
                if not parsed.flagged:
                    return []
                return [Finding("moderator", "reject",
                                f"The moderator flagged the {what} as {parsed.category or 'abusive'}: "
                                f"{parsed.reason}", None, text[:_SHOWN])]
            errors.append(error or "no output")
            log.info("moderator output rejected (attempt %d): %s", attempt, error)
            messages = [*messages, AIMessage(content=raw or "(no answer)"),
                        HumanMessage(content=f"That answer is not valid: {error}. Answer again with "
                                             "exactly the fields flagged, category and reason.")]
        return [Finding("moderator", "review",
                        f"The moderator gave no valid answer after 2 tries ({errors[-1]}), so the {what} "
                        "could not be checked; a curator will look at it.", None, text[:_SHOWN])]

    def _ask(self, messages: list) -> tuple[str, Any, str | None]:
        """``(raw text, validated verdict or None, error)``; provider errors propagate."""
        from langchain_core.exceptions import OutputParserException
        from langchain_core.output_parsers import PydanticOutputParser

        raw = ""
        try:
            if self.method == "tools":
                out = self.model.with_structured_output(ModerationVerdict, include_raw=True).invoke(messages)
                raw = message_text(out.get("raw"))
                if out.get("parsing_error") is not None or out.get("parsed") is None:
                    return raw, None, error_summary(out.get("parsing_error") or "the model called no tool", 300)
                return raw, out["parsed"], None
            raw = message_text(self.model.invoke(messages))
            return raw, PydanticOutputParser(pydantic_object=ModerationVerdict).parse(raw), None
        except (OutputParserException, ValidationError, json.JSONDecodeError) as exc:
            return raw, None, error_summary(exc, 300)


# -- both ------------------------------------------------------------------------------------

class SafetyChecker:
    """The toxicity check and the profanity lexicon on a request and the names it would write,
    then the moderator."""

    def __init__(self, toxicity: ToxicityCheck | None = ToxicityCheck(), moderator: ChatModerator | None = None,
                 *, lexicon: Any = "default"):
        from controller.profanity import LexiconCheck

        self.toxicity = toxicity
        self.lexicon = LexiconCheck() if lexicon == "default" else lexicon
        self.moderator = moderator

    def warm(self) -> None:
        """Load the classifier and build the lexicon now (seconds) rather than on the first check."""
        if self.toxicity is not None:
            _predict_prob()
        if self.lexicon is not None:
            from controller.profanity import lexicon

            lexicon()

    def check(self, request_text: str, labels: Sequence[str] = (), *, known: Iterable[str] = ()) -> list[Finding]:
        """Findings for ``request_text`` and ``labels`` (entity names the edit would write).

        ``known``: the names (labels, aliases) of KG entities the request mentions, e.g. those the
        interpreter linked. They are masked in the request and not scored as labels: the KG's own
        names are not abuse, and a few real ones look like profanity to the classifier. People
        named by a given name that is also slang ("Dick Cheney": see
        :func:`controller.profanity.personal_names`) are masked the same way.
        """
        from controller.profanity import personal_names

        skip = {k for k in known if k}
        folded = {k.casefold() for k in skip}
        names = list(dict.fromkeys(label for label in labels if label and label.casefold() not in folded))
        # people named like a body part ("Dick Cheney", "Philip K. Dick") are masked like known names
        people = set(personal_names(request_text)) if request_text else set()
        label_people = [set(personal_names(n)) for n in names]
        out: list[Finding] = []
        if self.toxicity is not None:
            out += self.toxicity.check([request_text], what="request", known=skip | people)
            for name, pn in zip(names, label_people):
                out += self.toxicity.check([name], what="entity name", known=pn)
        if self.lexicon is not None:
            # what the classifier already rejected needs no second finding
            seen = {f.text for f in out if f.verdict == "reject"}
            out += [f for f in self.lexicon.check([request_text], what="request", known=skip | people)
                    if f.text not in seen]
            for name, pn in zip(names, label_people):
                out += [f for f in self.lexicon.check([name], what="entity name", known=pn) if f.text not in seen]
        if self.moderator is not None:
            out += self.moderator.check(request_text, what="request")
        return out
