"""The LangChain tools, driven by a fake chat model that calls them, over both backends: the HTTP
service (a Client against a real ServerThread) and an in-process OneEdit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from oneedit.client import Client
from oneedit.integrations.langchain import (
    AskKnowledgeInput,
    EditKnowledgeInput,
    RollbackEditInput,
    ToolLoopLimit,
    knowledge_tools,
    run_tool_calls,
)
from oneedit.system import OneEdit
from tests.service_support import new_workspace, serve_users

USERS = {"alice": "editor", "vera": "viewer", "cora": "curator", "newbie": "editor"}


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    yield from serve_users(tmp_path_factory.mktemp("lc-remote") / "ws", USERS, low_trust=("newbie",))


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    root = new_workspace(tmp_path_factory.mktemp("lc-local") / "ws")
    with OneEdit.open(root, load_model=False) as oe:
        oe.users.add("vera", "viewer")
        yield oe


# -- a fake agent -------------------------------------------------------------------------------------------
def call(name: str, args: dict, n: int = 1) -> dict:
    return {"name": name, "args": args, "id": f"call_{name}_{n}", "type": "tool_call"}


def fake_model(script: Callable[[list[BaseMessage]], Iterator[AIMessage]], messages: list[BaseMessage]):
    """A chat model that plays ``script(messages)``: a generator of the model's turns that can read
    the tool results appended so far (and check the world between turns)."""
    return GenericFakeChatModel(messages=script(messages))


def result(msg: BaseMessage) -> dict:
    assert isinstance(msg, ToolMessage), msg
    return json.loads(msg.content)


def tool_messages(messages: list[BaseMessage]) -> list[ToolMessage]:
    return [m for m in messages if isinstance(m, ToolMessage)]


def kg_capital(backend, country: str) -> list[str]:
    if isinstance(backend, Client):
        return [f["object"] for f in backend.entity(country)["facts"] if f["relation"] == "capital"]
    return sorted(backend.kg.store.objects(backend.kg.resolve_entity(country).id, "capital"))


def ledger_status(backend, edit_id: int) -> str:
    if isinstance(backend, Client):
        return backend.status(edit_id)["status"]
    return backend.ledger.get(edit_id).status


def edit_ask_rollback(backend, tools: list[BaseTool], country: str, city: str, old: str) -> list[BaseMessage]:
    """An agent that stores a fact, asks about it, undoes it and answers; the world is checked
    between its turns."""
    messages: list[BaseMessage] = [HumanMessage(f"Remember that the capital of {country} is {city}.")]
    seen: dict = {}

    def script(msgs):
        yield AIMessage("", tool_calls=[call("edit_knowledge", {"text": f"The capital of {country} is {city}"})])
        edit = result(msgs[-1])
        seen["edit"] = edit
        assert msgs[-1].status == "success"
        assert edit["status"] == "applied" and ledger_status(backend, edit["edit_id"]) == "applied"
        assert kg_capital(backend, country) == [city.lower()]
        yield AIMessage("", tool_calls=[call("ask_knowledge", {"question": f"What is the capital of {country}?"})])
        seen["ask"] = result(msgs[-1])
        yield AIMessage("", tool_calls=[call("rollback_edit", {"edit_id": edit["edit_id"]})])
        seen["rollback"] = result(msgs[-1])
        assert kg_capital(backend, country) == [old]
        assert ledger_status(backend, edit["edit_id"]) == "rolled_back"
        yield AIMessage(f"Done: I stored it as edit #{edit['edit_id']} and undid it again.")

    out = run_tool_calls(fake_model(script, messages), tools, messages)
    assert out is messages and isinstance(out[-1], AIMessage) and not out[-1].tool_calls
    assert len(tool_messages(out)) == 3
    edit, ask, rollback = seen["edit"], seen["ask"], seen["rollback"]
    cid, oid = country.lower(), city.lower()
    assert [cid, "capital", oid] in edit["added"] and [cid, "capital", old] in edit["removed"]
    assert edit["replaced"] == [[cid, "capital", old]]
    assert ask == {"answers": [{"question": f"What is the capital of {country}", "relation": "capital",
                                "kg": [city], "model": None, "agree": None}]}
    assert rollback["rolled_back"] == [{"edit_id": edit["edit_id"], "text": f"The capital of {country} is {city}"}]
    return out


# -- the schemas -------------------------------------------------------------------------------------------
def test_tool_schemas(local):
    tools = knowledge_tools(local)
    assert [t.name for t in tools] == ["edit_knowledge", "ask_knowledge", "rollback_edit"]
    fields = {"edit_knowledge": (EditKnowledgeInput, {"text", "method"}, {"text"}),
              "ask_knowledge": (AskKnowledgeInput, {"question"}, {"question"}),
              "rollback_edit": (RollbackEditInput, {"edit_id", "cascade"}, {"edit_id"})}
    for tool in tools:
        schema_cls, props, required = fields[tool.name]
        assert tool.args_schema is schema_cls
        schema = tool.args_schema.model_json_schema()
        assert set(schema["properties"]) == props and set(schema["required"]) == required
        assert all(len(p["description"]) > 30 for p in schema["properties"].values())
        assert len(tool.description) > 150 and tool.handle_tool_error
        call_schema = tool.tool_call_schema.model_json_schema()
        assert set(call_schema["properties"]) == props
        spec = convert_to_openai_tool(tool)
        assert spec["type"] == "function"
        fn = spec["function"]
        assert fn["name"] == tool.name and fn["description"] == tool.description
        assert fn["parameters"]["type"] == "object" and set(fn["parameters"]["properties"]) == props
        assert set(fn["parameters"]["required"]) == required
    edit = convert_to_openai_tool(tools[0])["function"]["parameters"]["properties"]
    assert "memit" in json.dumps(edit["method"]) and "grace" in json.dumps(edit["method"])
    rollback = convert_to_openai_tool(tools[2])["function"]["parameters"]["properties"]
    assert rollback["edit_id"]["type"] == "integer" and rollback["cascade"]["default"] is False


def test_backends_are_checked(remote, local):
    with pytest.raises(ValueError, match="token's user"):
        knowledge_tools(remote.alice, user="someone")
    with pytest.raises(TypeError, match="Client or a oneedit.system.OneEdit"):
        knowledge_tools(object())


# -- the HTTP service ---------------------------------------------------------------------------------------
def test_agent_edits_asks_and_rolls_back_through_the_service(remote):
    edit_ask_rollback(remote.alice, knowledge_tools(remote.alice), "Austria", "Salzburg", "vienna")


def test_agent_reads_errors_and_goes_on_through_the_service(remote):
    remote.cora.protect("Japan", "capital", "Tokyo", reason="test")
    messages: list[BaseMessage] = [HumanMessage("Do a few things.")]

    def script(msgs):
        yield AIMessage("", tool_calls=[
            call("edit_knowledge", {"text": "San Jose is located in Mexico"}, 1),
            call("edit_knowledge", {"text": "hello there"}, 2),
            call("edit_knowledge", {"text": "The capital of Japan is Osaka"}, 3),
            call("rollback_edit", {"edit_id": 999}, 4),
            call("rollback_edit", {"edit_id": "not a number"}, 5),
            call("forget_everything", {}, 6),
        ])
        yield AIMessage("", tool_calls=[call("ask_knowledge", {"question": "What is the capital of Japan?"}, 7)])
        yield AIMessage("The capital of Japan is still Tokyo.")

    run_tool_calls(fake_model(script, messages), knowledge_tools(remote.alice), messages)
    ambiguous, unreadable, refused, missing, invalid, unknown, ask = tool_messages(messages)
    assert all(m.status == "error" for m in (ambiguous, unreadable, refused, missing, invalid, unknown))
    a = result(ambiguous)
    assert a["error"] == "AmbiguousRequest" and a["status"] == 409 and "could be several" in a["message"]
    assert {c["id"] for c in a["candidates"]} == {"san_jose", "san_jose_united_states"}
    assert all(c["description"] for c in a["candidates"])
    u = result(unreadable)
    assert u["error"] == "ParseError" and u["status"] == 400 and "hello there" in u["message"] and u["hint"]
    r = result(refused)
    assert r["error"] == "EditRefused" and r["status"] == "rejected" and isinstance(r["edit_id"], int)
    assert "protected" in r["reasons"][0] and r["added"] == [["japan", "capital", "osaka"], ["osaka", "capital_of", "japan"]]
    m = result(missing)
    assert m["status"] == 404 and "#999" in m["message"]
    assert result(invalid)["error"] == "InvalidArguments" and "edit_id" in invalid.content
    assert result(unknown)["error"] == "UnknownTool"
    assert ask.status == "success" and result(ask)["answers"][0]["kg"] == ["Tokyo"]
    assert messages[-1].content == "The capital of Japan is still Tokyo."
    remote.cora.protect("Japan", "capital", "Tokyo", remove=True)


def test_a_viewer_agent_is_told_it_cannot_edit(remote):
    messages: list[BaseMessage] = [HumanMessage("The capital of France is Lyon, remember it.")]

    def script(msgs):
        yield AIMessage("", tool_calls=[call("edit_knowledge", {"text": "The capital of France is Lyon"})])
        yield AIMessage("", tool_calls=[call("ask_knowledge", {"question": "What is the capital of France?"})])
        yield AIMessage("I may not edit; the KG says Paris.")

    run_tool_calls(fake_model(script, messages), knowledge_tools(remote.vera), messages)
    denied, ask = tool_messages(messages)
    assert denied.status == "error" and denied.tool_call_id == "call_edit_knowledge_1"
    err = result(denied)
    assert err["error"] == "PermissionDenied" and err["status"] == 403 and "vera is a viewer" in err["message"]
    assert result(ask)["answers"][0]["kg"] == ["Paris"]
    assert [f["object"] for f in remote.vera.entity("France")["facts"] if f["relation"] == "capital"] == ["paris"]


def test_an_edit_waiting_for_review_is_a_result_not_an_error(remote):
    tool = knowledge_tools(remote.newbie)[0]
    msg = tool.invoke(call("edit_knowledge", {"text": "The capital of Greece is Thessaloniki"}))
    assert msg.status == "success"
    out = result(msg)
    assert out["status"] == "needs_review" and "curator" in out["note"]
    assert out["edit_id"] in [e["id"] for e in remote.cora.review()]
    # called directly (not as a tool call) a tool returns the dict
    direct = knowledge_tools(remote.alice)[1].invoke({"question": "What is the capital of Greece?"})
    assert direct["answers"][0]["kg"] == ["Athens"]


def test_rollback_with_dependents_needs_cascade(remote):
    edit, _ask, rollback = knowledge_tools(remote.alice)
    first = edit.invoke({"text": "The capital of Norway is Bergen"})
    second = edit.invoke({"text": "The capital of Norway is Trondheim"})
    msg = rollback.invoke(call("rollback_edit", {"edit_id": first["edit_id"]}))
    assert msg.status == "error"
    err = result(msg)
    assert err["status"] == 409 and err["details"]["dependents"] == [second["edit_id"]] and "cascade" in err["hint"]
    out = rollback.invoke({"edit_id": first["edit_id"], "cascade": True})
    assert sorted(d["edit_id"] for d in out["rolled_back"]) == sorted([first["edit_id"], second["edit_id"]])
    assert [f["object"] for f in remote.alice.entity("Norway")["facts"] if f["relation"] == "capital"] == ["oslo"]


def test_tools_run_async(remote):
    _edit, ask, _rollback = knowledge_tools(remote.vera)
    msg = asyncio.run(ask.ainvoke(call("ask_knowledge", {"question": "What is the capital of Italy?"})))
    assert msg.status == "success" and result(msg)["answers"][0]["kg"] == ["Rome"]


# -- in process -------------------------------------------------------------------------------------------------
def test_agent_edits_asks_and_rolls_back_in_process(local):
    edit_ask_rollback(local, knowledge_tools(local), "Belgium", "Antwerp", "brussels")


def test_agent_reads_errors_in_process(local):
    messages: list[BaseMessage] = [HumanMessage("Store two facts.")]

    def script(msgs):
        yield AIMessage("", tool_calls=[call("edit_knowledge", {"text": "The capital of Sweden is Gothenburg"}, 1),
                                        call("edit_knowledge", {"text": "hello there"}, 2)])
        yield AIMessage("", tool_calls=[call("edit_knowledge", {"text": "The capital of Portugal is Porto"}, 3)])
        yield AIMessage("I could not store those.")

    run_tool_calls(fake_model(script, messages), knowledge_tools(local, user="vera"), messages)
    # a viewer may not edit: each call says so (before reading the sentence), and the loop goes on
    results = tool_messages(messages)
    assert [m.status for m in results] == ["error"] * 3 and messages[-1].content == "I could not store those."
    for m in results:
        err = result(m)
        assert err["error"] == "PermissionDenied" and "vera is a viewer" in err["message"] and err["hint"]
    assert sorted(local.kg.store.objects("sweden", "capital")) == ["stockholm"]

    # as the workspace's user (an admin), the unreadable and ambiguous requests say why
    edit = knowledge_tools(local)[0]
    err = result(edit.invoke(call("edit_knowledge", {"text": "hello there"})))
    assert err["error"] == "ParseError" and "status" not in err
    err = result(edit.invoke(call("edit_knowledge", {"text": "The capital of Portugal is Porto"})))
    assert err["error"] == "AmbiguousRequest" and "porto_novo" in {c["id"] for c in err["candidates"]}
    out = edit.invoke({"text": "The capital of Sweden is Stockholm"})
    assert out["status"] == "unchanged" and out["edit_id"] is None and out["added"] == []


def test_run_tool_calls_stops_a_model_that_never_answers(local):
    tools = knowledge_tools(local)
    endless = GenericFakeChatModel(messages=iter(
        [AIMessage("", tool_calls=[call("ask_knowledge", {"question": "What is the capital of Peru?"}, n)])
         for n in range(5)]))
    with pytest.raises(ToolLoopLimit) as info:
        run_tool_calls(endless, tools, [HumanMessage("?")], max_steps=3)
    assert len(tool_messages(info.value.messages)) == 3
    assert result(info.value.messages[-1])["answers"][0]["kg"] == ["Lima"]


# -- with a model ---------------------------------------------------------------------------------------------
def test_agent_edit_reaches_the_model(copy_ws):
    """One test with the tiny trained model: after the agent's edit the model and the KG agree."""
    with OneEdit.open(copy_ws) as oe:
        edit, ask, _rollback = knowledge_tools(oe, method="grace")
        before = ask.invoke({"question": "What is the capital of Germany?"})["answers"][0]
        assert before["kg"] == ["Berlin"] and before["model"].startswith("Berlin") and before["agree"] is True
        messages: list[BaseMessage] = [HumanMessage("Germany moved its capital to Hamburg.")]

        def script(msgs):
            yield AIMessage("", tool_calls=[call("edit_knowledge", {"text": "The capital of Germany is Hamburg"})])
            yield AIMessage("", tool_calls=[call("ask_knowledge", {"question": "What is the capital of Germany?"})])
            yield AIMessage("Noted: Hamburg.")

        run_tool_calls(fake_model(script, messages), [edit, ask], messages)
        done, asked = (result(m) for m in tool_messages(messages))
        assert done["status"] == "applied" and done["model"]["edited"] and done["model"]["method"] == "grace"
        after = asked["answers"][0]
        assert after["kg"] == ["Hamburg"] and after["model"].startswith("Hamburg") and after["agree"] is True
