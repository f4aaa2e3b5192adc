"""The LLM parser: any langchain-core chat model reads the request, the schema rides in the prompt.

The model answers with structured output validated by pydantic: a list of intents whose
``relation`` must be one of the schema's ids (an enum built from the schema), with no fields
beyond the declared ones. Models that support tool calling are asked through
``with_structured_output``; others get JSON format instructions and their reply is parsed with
``PydanticOutputParser``. The names the model returns go through the same entity linking as the
rule parser's. Output that does not validate (bad JSON, an unknown relation, extra fields, a name
that cannot be an entity) is sent back once with the error; a second failure raises
``LLMOutputError`` — never a crash, never half an intent.
"""

from __future__ import annotations

import importlib
import json
import re
import os
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from oneedit.core import EditIntent, LLMOutputError, ParseError, ParseResult, SourceLine, UnknownRelationError
from oneedit.core.llmtext import error_summary, message_text
from interpreter.relations import RelationLexicon
from interpreter.resolve import Resolver
from interpreter.text import MAX_CHARS, check_input

log = logging.getLogger(__name__)

#: ``--llm PROVIDER:MODEL``: the langchain integration package and chat class of each provider.
PROVIDERS: dict[str, tuple[str, str, str]] = {
    "openai": ("langchain_openai", "ChatOpenAI", "langchain-openai"),
    "azure": ("langchain_openai", "AzureChatOpenAI", "langchain-openai"),
    "anthropic": ("langchain_anthropic", "ChatAnthropic", "langchain-anthropic"),
    "ollama": ("langchain_ollama", "ChatOllama", "langchain-ollama"),
    "google": ("langchain_google_genai", "ChatGoogleGenerativeAI", "langchain-google-genai"),
    "mistral": ("langchain_mistralai", "ChatMistralAI", "langchain-mistralai"),
    "groq": ("langchain_groq", "ChatGroq", "langchain-groq"),
}

Op = Literal["assert", "replace", "retract", "query", "undo", "explain"]


class IntentBase(BaseModel):
    """Fields every intent of the LLM's answer has; ``relation`` is added per schema."""

    model_config = ConfigDict(extra="forbid")

    op: Op = Field(description="assert: add a fact; replace: a new value of a one-valued relation "
                               "('X is now Y'); retract: a fact is no longer true; query: a "
                               "question; undo: take back an edit; explain: why / history")
    subject: str | None = Field(None, description="the subject's name as written in the request "
                                                  "(pronouns resolved); null when it is what a question asks")
    object: str | None = Field(None, description="the object's name as written; null when it is "
                                                 "what a question asks, or to retract every value")
    edit: int | None = Field(None, description="undo/explain: the edit id, if one is named")
    count: int = Field(1, ge=1, le=1000, description="undo: how many of the latest edits")
    about: Literal["fact", "model", "history", "edit"] | None = Field(
        None, description="explain: why the KG holds a fact (fact), why the model says it (model), "
                          "the history of an entity or fact (history), or one edit (edit)")

    @model_validator(mode="after")
    def _complete(self):
        rel = getattr(self, "relation", None)
        if self.op in ("assert", "replace") and not (self.subject and rel and self.object):
            raise ValueError(f"{self.op} needs subject, relation and object")
        if self.op == "retract" and not (self.subject and rel):
            raise ValueError("retract needs subject and relation")
        if self.op == "query" and not (self.subject or self.object):
            raise ValueError("query needs a subject or an object")
        if self.op == "explain" and not (self.subject or self.edit is not None):
            raise ValueError("explain needs a subject or an edit id")
        return self


def output_model(lexicon: RelationLexicon) -> type[BaseModel]:
    """The pydantic model of a valid answer for this schema (relations as an enum)."""
    relation_ids = tuple(lexicon.relations)
    RelationId = Literal[relation_ids]  # type: ignore[valid-type]
    intent = create_model(
        "Intent", __base__=IntentBase,
        relation=(RelationId | None, Field(None, description="a relation id of the schema")),  # type: ignore[valid-type]
    )
    return create_model(
        "Intents", __config__=ConfigDict(extra="forbid"),
        intents=(list[intent], Field(description="what the request asks, in order")),  # type: ignore[valid-type]
        unsupported=(list[str], Field(default_factory=list,
                                      description="parts of the request no relation of the schema can express")),
    )


def schema_prompt(lexicon: RelationLexicon) -> str:
    """The instructions: operations, direction, and every relation with its phrases and types."""
    lines = [
        "You turn requests to a knowledge graph into structured intents.",
        "Operations: assert (a new fact), replace (a new value of a relation marked 'one value', e.g. "
        "'X is now Y'), retract ('X is no longer…', 'remove the fact that…'; object null = every value), "
        "query (a question; the unknown is null), undo ('undo my last edit' -> count 1; 'revert edit 42' "
        "-> edit 42), explain ('why does the model say…' -> about model; 'why is…' -> about fact; "
        "'show the history of X' -> about history; 'explain edit 7' -> about edit).",
        "Use the relation ids below, in the direction given (subject type -> object type). When the "
        "request says it the other way round ('Tim Cook is the CEO of Apple'), swap subject and "
        "object ('Apple' ceo 'Tim Cook'). Copy names as written; resolve pronouns to names.",
        "Put any part of the request that no relation can express in 'unsupported' instead of "
        "inventing a relation.",
        "",
        "Relations:",
    ]
    for rid, spec in lexicon.relations.items():
        if lexicon.canonical(rid)[1]:
            continue  # the stored direction of the pair is listed; the inverse is its mirror
        card = "one value" if spec.cardinality == "one" else "several values"
        phrases = ", ".join(spec.phrases[:8])
        extra = f"; derived: {' -> '.join(spec.rule)}" if spec.rule else ""
        lines.append(f"- {rid}: {' or '.join(spec.domain)} -> {' or '.join(spec.range)} ({card}); "
                     f"said as: {phrases}{extra}")
    return "\n".join(lines)


def chat_model_from_spec(spec: str, *, base_url: str | None = None, timeout: float | None = None):
    """A chat model from ``PROVIDER:MODEL`` (``openai:gpt-4o-mini``, ``ollama:llama3.1``).

    ``base_url``: the server to talk to — with ``openai`` any OpenAI-compatible server (llama.cpp,
    vLLM, Ollama's ``/v1``, LM Studio), which needs no API key unless it says so; ``timeout``:
    seconds one call may take (no retries: a slow server fails fast, with the reason)."""
    provider, _, model = spec.partition(":")
    provider = provider.strip().lower()
    if not model.strip() or provider not in PROVIDERS:
        raise ParseError(f"Cannot use the LLM {spec!r}.",
                         hint=f"Write PROVIDER:MODEL with a provider of: {', '.join(sorted(PROVIDERS))} "
                              "(for example openai:gpt-4o-mini or ollama:llama3.1).",
                         details={"llm": spec})
    module_name, class_name, package = PROVIDERS[provider]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ParseError(f"The LLM provider {provider!r} needs the package {package}.",
                         hint=f"pip install {package} (and set the provider's API key or server).",
                         details={"llm": spec, "package": package}) from None
    kwargs: dict[str, Any] = {"model": model.strip()}
    if base_url:
        if not re.match(r"^https?://[^\s/]+", base_url):
            raise ParseError(f"{base_url!r} is not a server address.", hint="Give e.g. --base-url http://127.0.0.1:8080/v1")
        kwargs["base_url"] = base_url
        if provider in ("openai", "azure") and not os.environ.get("OPENAI_API_KEY"):
            kwargs["api_key"] = "not-needed"  # local OpenAI-compatible servers take any key
    if timeout is not None:
        kwargs["timeout"] = timeout
        if provider in ("openai", "azure", "anthropic", "mistral", "groq"):
            kwargs["max_retries"] = 0
    try:
        return getattr(module, class_name)(**kwargs)
    except Exception as exc:  # provider constructors validate keys and settings
        raise ParseError(f"Could not set up {spec!r}: {exc}",
                         hint="Check the provider's API key, server address and model name.",
                         details={"llm": spec}) from None


class LLMParser:
    """Requests -> intents with a chat model (``langchain_core`` ``BaseChatModel``)."""

    def __init__(self, model, lexicon: RelationLexicon, resolver: Resolver, *,
                 method: Literal["auto", "tools", "json"] = "auto", max_chars: int = MAX_CHARS):
        self.model = model
        self.lexicon = lexicon
        self.resolver = resolver
        self.schema_model = output_model(lexicon)
        self.method = self._method(model, method)
        self.max_chars = max_chars

    @staticmethod
    def _method(model, method: str) -> str:
        if method != "auto":
            return method
        from langchain_core.language_models import BaseChatModel

        # Tool calling where the model implements it; JSON instructions otherwise.
        overrides = type(model).bind_tools is not BaseChatModel.bind_tools
        return "tools" if overrides else "json"

    def messages(self, text: str) -> list:
        from langchain_core.messages import HumanMessage, SystemMessage

        system = schema_prompt(self.lexicon)
        if self.method == "json":
            from langchain_core.output_parsers import PydanticOutputParser

            fmt = PydanticOutputParser(pydantic_object=self.schema_model).get_format_instructions()
            system += "\n\nAnswer with JSON only.\n" + fmt
        return [SystemMessage(content=system), HumanMessage(content=text)]

    def parse(self, text: str, *, source: SourceLine | None = None) -> ParseResult:
        check_input(text, max_chars=self.max_chars)
        messages = self.messages(text)
        errors: list[str] = []
        raw = ""
        for attempt in (1, 2):
            raw, parsed, error = self._ask(messages)
            if parsed is not None:
                try:
                    return self._result(text, parsed, source)
                except (ValueError, UnknownRelationError) as exc:
                    error = str(exc).splitlines()[0]
            errors.append(error or "no output")
            log.info("LLM output rejected (attempt %d): %s", attempt, error)
            if attempt == 1:
                messages = self._retry_messages(messages, raw, error or "no output")
        raise LLMOutputError(
            f"The LLM gave no valid answer after 2 tries: {errors[-1]}",
            hint="Try again, use a stronger model, or parse with the rule parser (leave out --llm).",
            details={"errors": errors, "last_output": raw[:2000], "text": text})

    def _ask(self, messages: list) -> tuple[str, Any, str | None]:
        """``(raw text, validated answer or None, error)``."""
        from langchain_core.exceptions import OutputParserException

        try:
            if self.method == "tools":
                runnable = self.model.with_structured_output(self.schema_model, include_raw=True)
                out = runnable.invoke(messages)
                raw_msg = out.get("raw")
                raw = message_text(raw_msg)
                if out.get("parsing_error") is not None or out.get("parsed") is None:
                    return raw, None, error_summary(out.get("parsing_error") or "the model called no tool")
                return raw, out["parsed"], None
            from langchain_core.output_parsers import PydanticOutputParser

            reply = self.model.invoke(messages)
            raw = message_text(reply)
            try:
                return raw, PydanticOutputParser(pydantic_object=self.schema_model).parse(raw), None
            except OutputParserException as exc:
                return raw, None, error_summary(exc)
        except (OutputParserException, ValidationError, json.JSONDecodeError) as exc:
            return "", None, error_summary(exc)
        except Exception as exc:  # the provider failed: network, quota, bad key
            raise LLMOutputError(f"The LLM call failed: {type(exc).__name__}: {error_summary(exc)}",
                                 hint="Check the provider's API key, server and model name, or leave "
                                      "out --llm to use the rule parser.",
                                 details={"error": str(exc)[:2000]}) from None

    def _retry_messages(self, messages: list, raw: str, error: str) -> list:
        from langchain_core.messages import AIMessage, HumanMessage

        return [*messages, AIMessage(content=raw or "(no answer)"),
                HumanMessage(content=f"That answer is not valid: {error}. Answer the same request "
                                     "again, following the schema exactly and adding no other fields.")]

    def _result(self, text: str, parsed, source: SourceLine | None) -> ParseResult:
        intents: list[EditIntent] = []
        for item in parsed.intents:
            intents.append(self.resolver.intent(item.op, item.subject, item.relation, item.object,
                                                edit=item.edit, count=item.count, about=item.about,
                                                text=text, source=source))
        notes = tuple(f"The schema cannot express: {u}" for u in parsed.unsupported)
        if not intents:
            raise ParseError(f"The LLM found nothing the schema can express in {text[:80]!r}.",
                             hint="Rephrase with one of the schema's relations.",
                             details={"unsupported": list(parsed.unsupported), "text": text})
        return ParseResult(text=text, intents=tuple(intents), notes=notes, parser="llm", source=source)
