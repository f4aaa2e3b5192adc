"""The LLM parser with langchain-core's fake chat models (offline): valid output, malformed JSON,
unknown relations, extra fields, tool calling, provider errors, fallback after the rule parser."""

from __future__ import annotations

import importlib.util
import json

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel, FakeMessagesListChatModel
from langchain_core.messages import AIMessage

from interpreter import Interpreter
from interpreter.llm import chat_model_from_spec, schema_prompt
from oneedit.core import LLMOutputError, ParseError
from oneedit.workspace import Workspace
from tests.interpreter_support import kg_state, shipped_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    with Workspace.open(shipped_workspace(tmp_path_factory)) as w:
        yield w


def answer(*intents, unsupported=()) -> str:
    return json.dumps({"intents": list(intents), "unsupported": list(unsupported)})


def fact(op, subject, relation, obj, **extra) -> dict:
    return {"op": op, "subject": subject, "relation": relation, "object": obj, **extra}


class ToolCallingFake(FakeMessagesListChatModel):
    """A fake chat model that 'supports' tools: ``with_structured_output`` binds the schema as a
    tool, and the scripted replies carry the tool calls."""

    def bind_tools(self, tools, **kwargs):
        return self


class BrokenModel(FakeListChatModel):
    def _call(self, *args, **kwargs):
        raise ConnectionError("connection refused (localhost:11434)")


def json_interp(ws, *replies):
    model = FakeListChatModel(responses=list(replies))
    return Interpreter.from_kg(ws.kg, llm=model), model


def test_valid_output_goes_through_the_same_linking(ws):
    interp, model = json_interp(ws, answer(fact("replace", "France", "capital", "Marseille"),
                                           fact("assert", "Tim Cook", "ceo_of", "Apple"),
                                           fact("assert", "Jane Doe", "ceo_of", "Aple")),
                               "a second answer the parser must not ask for")
    assert interp.llm.method == "json"
    res = interp.parse("Marseille is now the capital of France; Tim Cook runs Apple")
    assert res.parser == "llm" and model.i == 1  # one call, no retry
    a, b, c = res.intents
    assert a.key()[:4] == ("replace", "france", "capital", "marseille")
    assert b.key()[:4] == ("assert", "apple", "ceo", "tim_cook")  # stored direction, like the rules
    # Names the KG lacks become proposed entities typed from the relation; typos are linked.
    assert c.subject.id == "apple" and c.subject.confidence < 1.0
    assert c.object.to_dict() == {"new": "Jane Doe", "type": "Person"}


def test_malformed_json_is_retried_once(ws):
    interp, model = json_interp(ws, "Sure! The capital is {not json", answer(fact("query", "France", "capital", None)))
    res = interp.parse("What is the capital of France?")
    assert res.intents[0].key()[:4] == ("query", "france", "capital", None)
    assert model.i == 0  # both scripted replies were used (the fake cycles back to 0)


def test_malformed_twice_is_a_clear_error(ws):
    before = kg_state(ws)
    interp, _model = json_interp(ws, "not json", "still {not json")
    with pytest.raises(LLMOutputError) as err:
        interp.parse("What is the capital of France?")
    e = err.value
    assert "after 2 tries" in e.message and len(e.details["errors"]) == 2
    assert e.details["last_output"] == "still {not json" and "rule parser" in e.hint
    assert kg_state(ws) == before


def test_unknown_relation_is_rejected_by_the_schema_enum(ws):
    bad = answer(fact("assert", "France", "favourite_colour", "Blue"))
    interp, _ = json_interp(ws, bad, answer(fact("assert", "France", "capital", "Paris"),
                                            unsupported=["France's favourite colour is blue"]))
    res = interp.parse("Paris is the capital of France and its favourite colour is blue")
    assert [i.key()[:4] for i in res.intents] == [("assert", "france", "capital", "paris")]
    assert res.notes == ("The schema cannot express: France's favourite colour is blue",)
    interp, _ = json_interp(ws, bad, bad)
    with pytest.raises(LLMOutputError) as err:
        interp.parse("France's favourite colour is blue")
    errors = err.value.details["errors"]
    assert len(errors) == 2  # the retry was rejected too
    assert all("favourite_colour" in e and "relation" in e for e in errors), errors
    assert "relation" in err.value.message


def test_extra_fields_are_rejected_then_retried(ws):
    extra = json.dumps({"intents": [fact("assert", "France", "capital", "Paris", confidence=0.9)]})
    interp, model = json_interp(ws, extra, answer(fact("assert", "France", "capital", "Paris")))
    res = interp.parse("Paris is the capital of France")
    assert res.intents[0].key()[:4] == ("assert", "france", "capital", "paris")
    assert not hasattr(res.intents[0], "confidence_from_llm")
    interp, _ = json_interp(ws, extra, extra)
    with pytest.raises(LLMOutputError, match="Extra inputs are not permitted|extra"):
        interp.parse("Paris is the capital of France")


def test_incomplete_intents_are_invalid(ws):
    interp, _ = json_interp(ws, answer({"op": "assert", "subject": "France", "relation": "capital"}),
                            answer({"op": "undo", "edit": 42}))
    res = interp.parse("revert edit 42")
    assert res.intents[0].to_dict()["edit"] == 42 and res.intents[0].op == "undo"


def test_tool_calling_models_use_structured_output(ws):
    call = {"name": "Intents", "args": {"intents": [fact("retract", "Apple", "ceo", "Tim Cook")]}, "id": "1"}
    model = ToolCallingFake(responses=[AIMessage(content="", tool_calls=[call])])
    interp = Interpreter.from_kg(ws.kg, llm=model)
    assert interp.llm.method == "tools"
    res = interp.parse("Tim Cook is no longer the CEO of Apple")
    assert res.intents[0].key()[:4] == ("retract", "apple", "ceo", "tim_cook")

    bad = {"name": "Intents", "args": {"intents": [fact("assert", "Apple", "chairman", "Tim Cook")]}, "id": "2"}
    model = ToolCallingFake(responses=[AIMessage(content="", tool_calls=[bad]), AIMessage(content="no tool")])
    with pytest.raises(LLMOutputError) as err:
        Interpreter.from_kg(ws.kg, llm=model).parse("Tim Cook chairs Apple")
    assert len(err.value.details["errors"]) == 2


def test_the_prompt_carries_the_schema(ws):
    prompt = schema_prompt(Interpreter.from_kg(ws.kg).rules.lexicon)
    for rid, spec in ws.kg.schema.relations.items():
        if rid in ("capital_of", "child", "ceo_of", "founder_of"):
            assert f"- {rid}:" not in prompt  # the inverse of a listed pair
            continue
        assert f"- {rid}: " in prompt and spec.phrases[0] in prompt, rid
    interp, _ = json_interp(ws, answer())
    system = interp.llm.messages("x")[0].content
    assert "Answer with JSON only" in system and '"intents"' in system and "capital_of" not in system.split("Relations:")[1].split("\n\n")[0]


def test_nothing_expressible_is_a_parse_error(ws):
    interp, _ = json_interp(ws, answer(unsupported=["favourite colour"]))
    with pytest.raises(ParseError, match="nothing the schema can express"):
        interp.parse("France's favourite colour is blue")


def test_a_failing_provider_is_a_clear_error(ws):
    interp = Interpreter.from_kg(ws.kg, llm=BrokenModel(responses=["x"]))
    with pytest.raises(LLMOutputError, match="The LLM call failed: ConnectionError"):
        interp.parse("Paris is the capital of France")


def test_fallback_uses_the_model_only_when_the_rules_cannot_read(ws):
    model = FakeListChatModel(responses=[answer(fact("query", "Satya Nadella", "occupation", None)), "unused"])
    interp = Interpreter.from_kg(ws.kg, llm=model, mode="fallback")
    res = interp.parse("Tim Cook is the CEO of Apple")
    assert res.parser == "rules" and model.i == 0
    res = interp.parse("What does Satya Nadella do?")
    assert res.parser == "llm" and res.intents[0].key()[:4] == ("query", "satya_nadella", "occupation", None)
    assert model.i == 1  # asked once
    with pytest.raises(ParseError):  # bad input is refused before any model sees it
        interp.parse("")


def test_llm_mode_needs_a_model(ws):
    with pytest.raises(ValueError, match="needs a chat model"):
        Interpreter.from_kg(ws.kg, mode="fallback")


def test_provider_specs():
    with pytest.raises(ParseError) as err:
        chat_model_from_spec("nosuch:model")
    assert "openai" in err.value.hint and "ollama" in err.value.hint
    with pytest.raises(ParseError):
        chat_model_from_spec("openai")
    with pytest.raises(ParseError) as err:  # the integration package is not a dependency
        chat_model_from_spec("anthropic:claude-3-5-haiku-latest")
    if importlib.util.find_spec("langchain_anthropic") is None:  # not installed: says what to install
        assert "langchain-anthropic" in err.value.message
        assert err.value.hint.startswith("pip install langchain-anthropic"), err.value.hint
    else:  # installed, but no key here: the constructor's refusal, pointing at the key
        assert "API key" in err.value.hint, err.value.hint


# -- a real provider over real HTTP: an OpenAI-compatible server on loopback ---------------------------
class ScriptedOpenAI:
    """A small OpenAI-compatible chat server (``POST /v1/chat/completions``) on loopback that
    answers from a script: ``("reply", content)``, ``("sleep", seconds)``, ``("garbage", body)``;
    it records every request it got."""

    def __init__(self, *script):
        import http.server
        import threading

        self.script, self.requests = list(script), []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                import time

                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body})
                kind, value = outer.script.pop(0) if outer.script else ("reply", "{}")
                if kind == "sleep":
                    time.sleep(value)
                    kind, value = "reply", answer()
                data = (value.encode() if kind == "garbage" else json.dumps({
                    "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": value}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode())
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


needs_openai = pytest.mark.skipif(importlib.util.find_spec("langchain_openai") is None,
                                  reason="langchain-openai (the test extra) is not installed")


@needs_openai
def test_an_openai_compatible_local_server_parses_over_http(ws):
    with ScriptedOpenAI(("reply", answer(fact("replace", "France", "capital", "Marseille")))) as srv:
        model = chat_model_from_spec("openai:local-llama", base_url=srv.url, timeout=10)
        res = Interpreter.from_kg(ws.kg, llm=model).parse("Marseille is the new capital of France")
        assert [(i.op, i.triple.as_tuple()) for i in res.intents] == [("replace", ("france", "capital", "marseille"))]
        sent = srv.requests[0]
        assert sent["path"] == "/v1/chat/completions" and sent["body"]["model"] == "local-llama"
        assert "capital" in json.dumps(sent["body"]["messages"])  # the schema's relations were sent


@needs_openai
def test_a_malformed_reply_is_retried_once_then_an_error_and_a_slow_server_times_out(ws):
    before = kg_state(ws)
    with ScriptedOpenAI(("reply", "Sure! The capital is Lyon."),
                        ("reply", answer(fact("assert", "Tim Cook", "ceo_of", "Apple")))) as srv:
        model = chat_model_from_spec("openai:m", base_url=srv.url, timeout=10)
        res = Interpreter.from_kg(ws.kg, llm=model).parse("Tim Cook runs Apple")
        assert res.intents[0].triple.as_tuple() == ("apple", "ceo", "tim_cook") and len(srv.requests) == 2
    with ScriptedOpenAI(("garbage", "<html>502 Bad Gateway</html>"), ("garbage", "<html>502 Bad Gateway</html>")) as srv:
        model = chat_model_from_spec("openai:m", base_url=srv.url, timeout=10)
        with pytest.raises(LLMOutputError, match="^The LLM"):  # a clear error, not a traceback
            Interpreter.from_kg(ws.kg, llm=model).parse("Tim Cook runs Apple")
    with ScriptedOpenAI(("sleep", 3.0)) as srv:
        model = chat_model_from_spec("openai:m", base_url=srv.url, timeout=0.5)
        with pytest.raises(LLMOutputError, match="(?i)time"):
            Interpreter.from_kg(ws.kg, llm=model).parse("Tim Cook runs Apple")
    assert kg_state(ws) == before
    with pytest.raises(ParseError, match="not a server address"):
        chat_model_from_spec("openai:m", base_url="127.0.0.1:8080")


@needs_openai
def test_parse_command_with_a_base_url(tmp_path):
    from typer.testing import CliRunner

    from oneedit.cli import app
    from tests.service_support import new_workspace

    root = new_workspace(tmp_path / "ws")  # (the module's workspace is open in this process)

    with ScriptedOpenAI(("reply", answer(fact("assert", "Tim Cook", "ceo_of", "Apple")))) as srv:
        res = CliRunner().invoke(app, ["parse", "Tim Cook runs Apple", "--llm", "openai:m", "--base-url", srv.url,
                                       "--workspace", str(root), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["parser"] == "llm" and out["intents"][0]["relation"] == "ceo"
