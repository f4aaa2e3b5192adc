"""Interpreter: text (natural language, CSV, JSONL, RDF) -> typed edit intents.

``Interpreter`` is the entry point: ``Interpreter.from_kg(kg).parse("Lyon is now the capital of
France")`` returns a ``ParseResult`` of ``EditIntent``s (defined in ``oneedit.core``, where the
controller meets them). The default parser is offline and driven by the schema's phrases and
templates (``interpreter.rules``); any langchain-core chat model can parse instead, or as a
fallback (``interpreter.llm``); batch files are read by ``interpreter.batch``. See
``docs/interpreter.md``.
"""

from oneedit.core import EditIntent, Mention, ParseResult, SourceLine
from interpreter.interpret import Interpreter
from interpreter.linking import LinkConfig
from interpreter.text import MAX_CHARS

__all__ = ["MAX_CHARS", "EditIntent", "Interpreter", "LinkConfig", "Mention", "ParseResult", "SourceLine"]
