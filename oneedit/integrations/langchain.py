"""LangChain tools that let an agent keep its memory in OneEdit's knowledge graph and model.

::

    from oneedit.client import Client
    from oneedit.integrations.langchain import knowledge_tools

    tools = knowledge_tools(Client("http://127.0.0.1:8000", token))   # or knowledge_tools(OneEdit.open(ws))
    agent_model = chat_model.bind_tools(tools)

Three tools:

* ``edit_knowledge``: state a fact in plain language; it is checked, written to the KG (with its
  consequences, replacing the values it conflicts with) and to the model. The result: the edit's
  id and status, the facts added and removed, the facts it replaced, or why it was refused.
* ``ask_knowledge``: ask a question; per question the KG's answer, the model's, and whether they
  agree.
* ``rollback_edit``: undo an applied edit (by id) in the KG and the model.

The backend is either the HTTP service (a :class:`oneedit.client.Client`: the token's user makes
the edits) or an in-process :class:`oneedit.system.OneEdit` (``user=`` says who). Errors (a
refused edit, a missing permission, an ambiguous name with its candidates, a sentence that cannot
be read) come back to the agent as a tool result it can read (a ``ToolMessage`` with
``status="error"`` and a JSON body), never as an exception out of the tool.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field, ValidationError

from oneedit.core import META_PREDICATES, OneEditError

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from oneedit.client import Client
    from oneedit.system import OneEdit

__all__ = [
    "AskKnowledgeInput",
    "EditKnowledgeInput",
    "KnowledgeBackend",
    "LocalBackend",
    "RemoteBackend",
    "RollbackEditInput",
    "ToolLoopLimit",
    "knowledge_tools",
    "run_tool_calls",
]

JSON = dict[str, Any]
REFUSED = ("rejected", "failed")


# -- argument schemas (the LLM reads the descriptions) --------------------------------------------------
class EditKnowledgeInput(BaseModel):
    """Arguments of ``edit_knowledge``."""

    text: str = Field(
        min_length=1, max_length=4000,
        description="One or more facts as plain declarative sentences, e.g. \"The capital of France is Lyon\", "
                    "\"Tim Cook is the CEO of Apple\", \"Tim Cook is no longer the CEO of Apple\". Use the "
                    "entities' full names; put a name the KG does not know yet in quotes.")
    method: Literal["memit", "grace"] | None = Field(
        None, description="How the language model is edited: \"memit\" (rewrites weights; generalises to "
                          "paraphrases) or \"grace\" (a local adapter; exact and easy to undo). Leave it out to "
                          "use the workspace's default.")


class AskKnowledgeInput(BaseModel):
    """Arguments of ``ask_knowledge``."""

    question: str = Field(
        min_length=1, max_length=4000,
        description="A question about facts, e.g. \"What is the capital of France?\", \"Who is the CEO of "
                    "Apple?\", \"Is Berlin the capital of Germany?\". Several questions may be asked at once.")


class RollbackEditInput(BaseModel):
    """Arguments of ``rollback_edit``."""

    edit_id: int = Field(ge=1, description="The id of an applied edit (the edit_id that edit_knowledge returned).")
    cascade: bool = Field(
        False, description="Also roll back later edits that build on this one (they are listed when this is "
                           "needed). Default false: refuse instead.")


EDIT_DESCRIPTION = (
    "Store a fact in long-term memory: the knowledge graph (KG) and the language model are edited together so "
    "they stay consistent. The request is checked first: a fact it conflicts with (e.g. the old capital of a "
    "country) is replaced, inverse facts are kept in step, and unsafe or contradictory edits are refused or sent "
    "to a human for review. Returns the edit_id (needed to undo it with rollback_edit), its status (applied, "
    "unchanged, needs_review, rejected, failed), the facts added and removed, the facts replaced, and the reasons "
    "when it was refused. Facts are (subject, relation, object) with entity ids. If a name is ambiguous the "
    "error lists candidates: ask again with the full name or the id.")

ASK_DESCRIPTION = (
    "Look facts up in long-term memory: answers a question from the knowledge graph (KG) and from the language "
    "model side by side. Returns, per question, the KG's answer ('kg': a list of values, or true/false for a "
    "yes/no question), the model's answer ('model', null when the workspace has no model) and whether they "
    "agree. Trust the KG's answer; use edit_knowledge to change a fact. Changes nothing.")

ROLLBACK_DESCRIPTION = (
    "Undo an applied edit (by its edit_id from edit_knowledge): the knowledge graph and the model both go back "
    "to what they held before it. If later edits build on it this refuses and lists them, unless cascade is "
    "true. Returns the edits rolled back.")


# -- backends ---------------------------------------------------------------------------------------------
@runtime_checkable
class KnowledgeBackend(Protocol):
    """What the tools need; errors are :class:`~oneedit.core.OneEditError`."""

    def edit(self, text: str, method: str | None) -> JSON:
        """Apply an edit; a ledger-row-like dict: ``id``, ``status``, ``text``, ``plan``,
        ``model_edit``, ``error``."""
        ...

    def ask(self, question: str) -> list[JSON]:
        """The answers (``kg``, ``model``, ``agree``) to each question in ``question``."""
        ...

    def rollback(self, edit_id: int, cascade: bool) -> JSON:
        """Roll back; ``{"rolled_back": [ids]}``."""
        ...

    def edit_text(self, edit_id: int) -> str:
        """What an edit asked for."""
        ...


class RemoteBackend:
    """The HTTP service: the client's token decides who edits."""

    def __init__(self, client: Client, *, timeout: float = 120.0):
        self.client = client
        self.timeout = timeout

    def edit(self, text: str, method: str | None) -> JSON:
        from oneedit.client import WaitTimeout

        try:
            return self.client.edit(text, method=method, wait=True, timeout=self.timeout)  # type: ignore[arg-type]
        except WaitTimeout as exc:  # still going on in the service: say so, with its id
            return (exc.last or {"id": exc.edit_id, "status": "queued", "text": text}) | {
                "note": f"not decided within {self.timeout:g} s; it goes on in the service"}

    def ask(self, question: str) -> list[JSON]:
        return self.client.ask(question)["answers"]

    def rollback(self, edit_id: int, cascade: bool) -> JSON:
        return self.client.rollback(edit_id, cascade=cascade)

    def edit_text(self, edit_id: int) -> str:
        return self.client.status(edit_id).get("text", "")


class LocalBackend:
    """An in-process :class:`~oneedit.system.OneEdit`, acting as ``user`` (default: the
    workspace's user). Calls are serialised (the facade is not meant for concurrent writes)."""

    def __init__(self, system: OneEdit, *, user: str | None = None):
        self.system = system
        self.user = user
        self._lock = threading.Lock()

    def edit(self, text: str, method: str | None) -> JSON:
        with self._lock:
            out = self.system.submit(text, user=self.user, method=method)
        row = out.to_dict()
        return row | {"id": out.edit, "status": "unchanged" if out.status == "noop" else out.status,
                      "model_edit": out.model}

    def ask(self, question: str) -> list[JSON]:
        with self._lock:
            return self.system.ask(question)

    def rollback(self, edit_id: int, cascade: bool) -> JSON:
        with self._lock:
            return self.system.rollback(edit_id, user=self.user, cascade=cascade)

    def edit_text(self, edit_id: int) -> str:
        entry = self.system.ledger.get(edit_id)
        return entry.text if entry is not None else ""


def as_backend(backend: Client | OneEdit | KnowledgeBackend, *, user: str | None = None,
               timeout: float = 120.0) -> KnowledgeBackend:
    """The backend for a :class:`~oneedit.client.Client`, a :class:`~oneedit.system.OneEdit` or
    anything that already implements :class:`KnowledgeBackend`."""
    from oneedit.client import Client
    from oneedit.system import OneEdit

    if isinstance(backend, Client):
        if user is not None:
            raise ValueError("With a Client the token's user makes the edits; `user` is for an in-process OneEdit.")
        return RemoteBackend(backend, timeout=timeout)
    if isinstance(backend, OneEdit):
        return LocalBackend(backend, user=user)
    if isinstance(backend, KnowledgeBackend):
        return backend
    raise TypeError(f"knowledge_tools needs a oneedit.client.Client or a oneedit.system.OneEdit, not "
                    f"{type(backend).__name__}.")


# -- results the LLM reads ---------------------------------------------------------------------------------
def _fact(t: dict) -> list[str]:
    return [t["subject"], t["relation"], t["object"]]


def edit_summary(row: JSON) -> JSON:
    """A compact account of an edit (a ledger row or an outcome) for an LLM."""
    plan = row.get("plan") or {}
    diff = plan.get("kg_diff") or {}
    status = row.get("status")
    out: JSON = {"edit_id": row.get("id"), "status": status, "text": row.get("text", "")}
    out["added"] = [_fact(t) for t in diff.get("added", []) if t["relation"] not in META_PREDICATES]
    out["removed"] = [_fact(t) for t in diff.get("removed", []) if t["relation"] not in META_PREDICATES]
    replaced = [_fact(c["fact"]) for c in plan.get("conflicts", []) if c.get("fact") and c.get("resolution") == "replace"]
    if replaced:
        out["replaced"] = replaced
    if plan.get("new_entities"):
        out["new_entities"] = [{"id": e["id"], "label": e["label"], "type": e["type"]} for e in plan["new_entities"]]
    reasons = list(plan.get("reasons") or [])
    if row.get("error"):
        err = row["error"]
        reasons.append(err.get("message") or err.get("error") or str(err))
    if reasons and status != "applied":
        out["reasons"] = reasons
    model = row.get("model_edit")
    if status == "applied":
        if model:
            m: JSON = {"edited": bool(model.get("id")), "method": model.get("method")}
            answers = model.get("answers") or []
            if answers:
                m["probes_passed"] = f"{sum(bool(a.get('ok')) for a in answers)}/{len(answers)}"
            if model.get("note"):
                m["note"] = model["note"]
            out["model"] = m
        else:
            out["model"] = None
    notes = {"unchanged": "The KG already holds this; nothing changed.",
             "needs_review": "Waiting for a curator's review: not in the KG or the model yet.",
             "rejected": "Refused: nothing changed.",
             "failed": "Failed: nothing changed."}
    if row.get("note"):
        out["note"] = row["note"]
    elif status in notes:
        out["note"] = notes[status]
    if row.get("duplicate"):
        out["duplicate"] = True
    return out


def answer_summary(a: JSON) -> JSON:
    out = {"question": a.get("question"), "relation": a.get("relation"), "kg": a.get("kg"),
           "model": a.get("model"), "agree": a.get("agree")}
    if a.get("note"):
        out["note"] = a["note"]
    return out


def error_summary(exc: OneEditError) -> JSON:
    """An error as the agent reads it: what went wrong, what to do, and the useful details."""
    out: JSON = {"error": getattr(exc, "error", None) or type(exc).__name__, "message": exc.message}
    if exc.hint:
        out["hint"] = exc.hint
    status = getattr(exc, "status", None)
    if status is not None:
        out["status"] = status
    details = dict(exc.details or {})
    details.pop("parse", None)
    if details.get("options"):
        out["candidates"] = [{k: o.get(k) for k in ("id", "label", "description", "type")}
                             for o in details.pop("options")]
        details.pop("candidates", None)
    if details:
        out["details"] = details
    return out


def _fail(payload: JSON) -> ToolException:
    return ToolException(json.dumps(payload, ensure_ascii=False))


def _validation_error(exc: ValidationError) -> str:
    problems = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors())
    return json.dumps({"error": "InvalidArguments", "message": f"The tool's arguments are not valid: {problems}"},
                      ensure_ascii=False)


# -- the tools ------------------------------------------------------------------------------------------------
def knowledge_tools(backend: Client | OneEdit | KnowledgeBackend, *, user: str | None = None,
                    method: Literal["memit", "grace"] | None = None, timeout: float = 120.0) -> list[BaseTool]:
    """``[edit_knowledge, ask_knowledge, rollback_edit]`` over ``backend``.

    ``backend``: a :class:`~oneedit.client.Client` (the service; the token's user edits) or an
    in-process :class:`~oneedit.system.OneEdit` (``user`` edits; default the workspace's user).
    ``method``: the model-editing method when the agent names none. ``timeout``: how long an edit
    through the service is waited for."""
    be = as_backend(backend, user=user, timeout=timeout)
    default_method = method

    def edit_knowledge(text: str, method: Literal["memit", "grace"] | None = None) -> JSON:
        try:
            row = be.edit(text, method or default_method)
        except OneEditError as exc:
            raise _fail(error_summary(exc)) from exc
        out = edit_summary(row)
        if out["status"] in REFUSED:
            raise _fail({"error": "EditRefused"} | out)
        return out

    def ask_knowledge(question: str) -> JSON:
        try:
            answers = be.ask(question)
        except OneEditError as exc:
            raise _fail(error_summary(exc)) from exc
        return {"answers": [answer_summary(a) for a in answers]}

    def rollback_edit(edit_id: int, cascade: bool = False) -> JSON:
        try:
            out = be.rollback(edit_id, cascade)
            done = [{"edit_id": i, "text": be.edit_text(i)} for i in out.get("rolled_back", [])]
        except OneEditError as exc:
            raise _fail(error_summary(exc)) from exc
        return {"rolled_back": done,
                "note": "Rolled back in the KG and the model." if done else "Nothing was rolled back."}

    common: dict[str, Any] = {"handle_tool_error": True, "handle_validation_error": _validation_error}
    return [
        StructuredTool.from_function(edit_knowledge, name="edit_knowledge", description=EDIT_DESCRIPTION,
                                     args_schema=EditKnowledgeInput, **common),
        StructuredTool.from_function(ask_knowledge, name="ask_knowledge", description=ASK_DESCRIPTION,
                                     args_schema=AskKnowledgeInput, **common),
        StructuredTool.from_function(rollback_edit, name="rollback_edit", description=ROLLBACK_DESCRIPTION,
                                     args_schema=RollbackEditInput, **common),
    ]


# -- a minimal agent loop -------------------------------------------------------------------------------------
class ToolLoopLimit(OneEditError):
    """The model was still calling tools after ``max_steps`` turns; ``messages`` holds the transcript."""

    def __init__(self, max_steps: int, messages: list[BaseMessage]):
        super().__init__(f"The model still called tools after {max_steps} turns.",
                         hint="Raise max_steps, or check what the model keeps asking for.")
        self.messages = messages


def run_tool_calls(model: Runnable | Callable[[list[BaseMessage]], BaseMessage], tools: Sequence[BaseTool],
                   messages: list[BaseMessage], *, max_steps: int = 10) -> list[BaseMessage]:
    """A minimal agent loop: invoke ``model`` on ``messages``, run each tool call of its answer
    (``tool.invoke(call)`` gives a ``ToolMessage``), and repeat until it answers without tool calls.

    ``model`` is a chat model already bound to the tools (``chat_model.bind_tools(tools)``) or any
    callable from messages to a message. The model's messages and the tools' results are appended
    to ``messages`` in place; it is returned, its last message being the model's answer. A call to
    an unknown tool gets an error ``ToolMessage`` (the model can correct itself); after
    ``max_steps`` model turns :class:`ToolLoopLimit` is raised."""
    by_name = {t.name: t for t in tools}
    invoke = model.invoke if hasattr(model, "invoke") else model
    for _ in range(max_steps):
        reply = invoke(messages)
        messages.append(reply)
        calls = reply.tool_calls if isinstance(reply, AIMessage) else []
        if not calls:
            return messages
        for call in calls:
            tool = by_name.get(call["name"])
            if tool is None:
                messages.append(ToolMessage(
                    json.dumps({"error": "UnknownTool", "message": f"There is no tool named {call['name']!r}.",
                                "hint": f"Use one of: {', '.join(by_name)}."}),
                    tool_call_id=call.get("id") or "", name=call["name"], status="error"))
                continue
            messages.append(tool.invoke(call))
    raise ToolLoopLimit(max_steps, messages)
