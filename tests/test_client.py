"""oneedit.client.Client against a real service (ServerThread over the shipped KG, no model)."""

from __future__ import annotations

import socket

import httpx
import pytest

from oneedit.client import ApiError, Client, WaitTimeout
from tests.service_support import serve_users

USERS = {"alice": "editor", "bob": "editor", "vera": "viewer", "cora": "curator", "ada": "admin", "newbie": "editor"}


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    yield from serve_users(tmp_path_factory.mktemp("client") / "ws", USERS, low_trust=("newbie",))


def capital(client: Client, country: str) -> list[str]:
    return [f["object"] for f in client.entity(country)["facts"] if f["relation"] == "capital"]


def record_requests(client: Client) -> list[str]:
    """The ``METHOD path`` of every request the client sends from now on."""
    seen: list[str] = []
    client._http.event_hooks["request"].append(lambda r: seen.append(f"{r.method} {r.url.path}"))
    return seen


def test_health_and_me(svc):
    with Client(svc.url, None) as anonymous:
        health = anonymous.health()
    assert health["status"] == "ok" and health["model"] == "none"
    me = svc.alice.me()
    assert (me["name"], me["role"], me["can_edit"], me["can_review"]) == ("alice", "editor", True, False)
    assert svc.ada.me()["can_admin"] is True


def test_edit_waits_until_applied_and_the_kg_changes(svc):
    assert capital(svc.alice, "France") == ["paris"]
    seen = record_requests(svc.alice)
    row = svc.alice.edit("The capital of France is Lyon")
    assert row["status"] == "applied" and row["author"] == "alice"
    assert {"subject": "france", "relation": "capital", "object": "lyon"} in row["plan"]["kg_diff"]["added"]
    assert {"subject": "france", "relation": "capital", "object": "paris"} in row["plan"]["kg_diff"]["removed"]
    assert capital(svc.alice, "France") == ["lyon"]
    # it followed the event stream, then read the decided row once
    edit = f"/api/edits/{row['id']}"
    assert f"GET {edit}/events" in seen and seen.count(f"GET {edit}") == 1
    assert svc.alice.status(row["id"])["status"] == "applied"
    assert svc.alice.history(limit=1)[0]["id"] == row["id"]
    assert [e["id"] for e in svc.alice.history(entity="France", status="applied")] == [row["id"]]
    answers = svc.vera.ask("What is the capital of France?")["answers"]
    assert answers[0]["kg"] == ["Lyon"] and answers[0]["model"] is None


def test_without_httpx_sse_it_polls(svc, monkeypatch):
    import oneedit.client

    monkeypatch.setattr(oneedit.client, "connect_sse", None)
    seen = record_requests(svc.bob)
    row = svc.bob.edit("The capital of Australia is Sydney")
    assert row["status"] == "applied" and capital(svc.bob, "Australia") == ["sydney"]
    assert not any(s.endswith("/events") for s in seen) and f"GET /api/edits/{row['id']}" in seen


def test_a_conflicting_edit_by_another_user_replaces_the_first(svc):
    first = svc.alice.edit("The capital of Germany is Hamburg", wait=False)
    second = svc.bob.edit("The capital of Germany is Munich", wait=False)
    assert first["status"] == second["status"] == "queued" and second["id"] > first["id"]
    first, second = svc.alice.wait(first["id"], 60), svc.bob.wait(second["id"], 60)
    assert first["status"] == second["status"] == "applied"
    # the second was planned against the KG the first left: Hamburg was in its way
    conflicts = second["plan"]["conflicts"]
    assert [(c["kind"], c["fact"], c["resolution"]) for c in conflicts] == [
        ("functional", {"subject": "germany", "relation": "capital", "object": "hamburg"}, "replace")]
    assert capital(svc.alice, "Germany") == ["munich"]


def test_auth_errors_carry_status_and_message(svc):
    with Client(svc.url, "not-a-token") as bad:
        with pytest.raises(ApiError) as info:
            bad.me()
    assert info.value.status == 401 and info.value.error == "Unauthorized"
    assert "not valid" in info.value.message and info.value.hint
    with Client(svc.url, None) as anonymous, pytest.raises(ApiError) as info:
        anonymous.stats()
    assert info.value.status == 401 and "Bearer" in info.value.message

    with pytest.raises(ApiError) as info:
        svc.vera.edit("The capital of France is Marseille")
    err = info.value
    assert err.status == 403 and err.error == "PermissionDenied"
    assert "vera is a viewer" in err.message and err.details["needed"] == "editor"
    assert err.to_dict()["status"] == 403
    with pytest.raises(ApiError) as info:
        svc.alice.users()
    assert info.value.status == 403 and "admin" in info.value.message
    with pytest.raises(ApiError) as info:
        svc.alice.review()
    assert info.value.status == 403


def test_editors_see_only_their_own_edits(svc):
    row = svc.bob.edit("The capital of Turkey is Istanbul")
    with pytest.raises(ApiError) as info:
        svc.alice.status(row["id"])
    assert info.value.status == 404 and info.value.error == "NotFound"
    with pytest.raises(ApiError) as info:  # the stream says so too, before any waiting
        svc.alice.wait(row["id"], 5)
    assert info.value.status == 404
    assert svc.cora.status(row["id"])["author"] == "bob"


def test_rollback(svc):
    row = svc.alice.edit("The capital of Italy is Milan")
    assert row["status"] == "applied" and capital(svc.alice, "Italy") == ["milan"]
    out = svc.alice.rollback(row["id"])
    assert out["rolled_back"] == [row["id"]]
    assert svc.alice.status(row["id"])["status"] == "rolled_back"
    assert capital(svc.alice, "Italy") == ["rome"]
    with pytest.raises(ApiError) as info:
        svc.alice.rollback(row["id"])
    assert info.value.status == 409 and "only applied edits" in info.value.message


def test_rollback_with_dependents_needs_cascade(svc):
    first = svc.alice.edit("The capital of Switzerland is Zurich")
    second = svc.alice.edit("The capital of Switzerland is Geneva")
    assert first["status"] == second["status"] == "applied"
    with pytest.raises(ApiError) as info:
        svc.alice.rollback(first["id"])
    assert info.value.status == 409 and info.value.details["dependents"] == [second["id"]]
    out = svc.alice.rollback(first["id"], cascade=True)
    assert sorted(out["rolled_back"]) == sorted([first["id"], second["id"]])
    assert capital(svc.alice, "Switzerland") == ["bern"]


def test_dry_run_returns_the_plan_and_changes_nothing(svc):
    before = svc.ada.stats()
    out = svc.alice.edit("The capital of Spain is Seville", dry_run=True)
    assert out["status"] == "planned" and out["edit"] is None
    plan = out["plan"]
    assert plan["decision"] == "apply"
    assert plan["conflicts"][0]["fact"] == {"subject": "spain", "relation": "capital", "object": "madrid"}
    assert {"subject": "spain", "relation": "capital", "object": "seville"} in plan["kg_diff"]["added"]
    after = svc.ada.stats()
    assert after["kg_revision"] == before["kg_revision"] and after["ledger"] == before["ledger"]
    assert capital(svc.alice, "Spain") == ["madrid"]


def test_request_key_makes_retries_idempotent(svc):
    first = svc.bob.edit("The capital of Poland is Krakow", request_key="poland-1")
    again = svc.bob.edit("The capital of Poland is Krakow", request_key="poland-1")
    assert first["status"] == again["status"] == "applied"
    assert again["id"] == first["id"] and again["duplicate"] is True and "duplicate" not in first
    queued = svc.bob.edit("The capital of Poland is Krakow", request_key="poland-1", wait=False)
    assert queued["id"] == first["id"] and queued["duplicate"] is True
    # the key is the user's: another user's same key is another request
    other = svc.alice.edit("The capital of Poland is Krakow", request_key="poland-1")
    assert other["id"] != first["id"] and other["status"] == "unchanged"


def test_an_ambiguous_name_is_a_409_with_candidates(svc):
    before = svc.ada.stats()["ledger"]
    with pytest.raises(ApiError) as info:
        svc.alice.edit("San Jose is located in Mexico")
    err = info.value
    assert err.status == 409 and err.error == "AmbiguousRequest"
    assert "could be several entities" in err.message
    assert {"san_jose", "san_jose_united_states"} <= set(err.details["candidates"])
    assert svc.ada.stats()["ledger"] == before  # refused before it was queued


def test_an_unreadable_request_is_a_400(svc):
    with pytest.raises(ApiError) as info:
        svc.alice.edit("hello there")
    assert info.value.status == 400 and info.value.error == "ParseError" and info.value.hint
    with pytest.raises(ApiError) as info:
        svc.alice.edit()
    assert info.value.status == 422 and "text" in info.value.message


def test_structured_triples(svc):
    row = svc.alice.edit(triples=[("Canada", "capital", "Toronto")])
    assert row["status"] == "applied"
    assert capital(svc.alice, "Canada") == ["toronto"]
    row = svc.alice.edit(triples=[{"op": "retract", "subject": "Canada", "relation": "capital", "object": "Toronto"}])
    assert row["status"] == "applied" and capital(svc.alice, "Canada") == []


def test_review_approve_and_reject(svc):
    held = svc.newbie.edit("The capital of Greece is Thessaloniki")
    other = svc.newbie.edit("The capital of India is Mumbai")
    assert held["status"] == other["status"] == "needs_review"
    assert capital(svc.alice, "Greece") == ["athens"]
    waiting = [e["id"] for e in svc.cora.review()]
    assert held["id"] in waiting and other["id"] in waiting
    out = svc.cora.approve(held["id"])
    assert out["status"] == "applied" and capital(svc.alice, "Greece") == ["thessaloniki"]
    rejected = svc.cora.reject(other["id"], reason="not true")
    assert rejected["status"] == "rejected" and rejected["review_note"] == "not true"
    assert capital(svc.alice, "India") == ["new_delhi"]
    assert other["id"] not in [e["id"] for e in svc.cora.review()]


def test_a_protected_fact_refuses_the_edit(svc):
    svc.cora.protect("Japan", "capital", "Tokyo", reason="test")
    assert {"subject": "japan", "relation": "capital", "object": "tokyo"}.items() <= svc.alice.protected()[0].items()
    row = svc.alice.edit("The capital of Japan is Osaka")
    assert row["status"] == "rejected" and row["plan"]["refused_by"] == "protected"
    assert capital(svc.alice, "Japan") == ["tokyo"]
    svc.cora.protect("Japan", "capital", "Tokyo", remove=True)


def test_kg_browse(svc):
    e = svc.vera.entity("Berlin")
    assert e["id"] == "berlin" and e["type"] == "City"
    hood = svc.vera.neighbourhood("Berlin", depth=1)
    assert hood["center"] == "berlin" and any(n["id"] == "germany" for n in hood["nodes"])
    hits = svc.vera.search("Portland")
    assert {h["id"] for h in hits[:2]} == {"portland", "portland_maine"}
    assert svc.vera.parse("The capital of France is Nice")["intents"][0]["op"] == "assert"
    with pytest.raises(ApiError) as info:
        svc.vera.entity("Nowhereland")
    assert info.value.status == 404 and info.value.details["closest"]
    with pytest.raises(ApiError) as info:  # an entity lookup by an ambiguous name
        svc.vera.entity("Portland")
    assert info.value.details["candidates"] == ["portland", "portland_maine"]


def test_users_and_stats(svc):
    new = svc.ada.add_user("eve", "viewer")
    assert new["name"] == "eve" and new["role"] == "viewer" and new["token"]
    with Client(svc.url, new["token"]) as eve:
        assert eve.me()["name"] == "eve"
    assert "eve" in {u["name"] for u in svc.ada.users()}
    with pytest.raises(ApiError) as info:
        svc.ada.add_user("eve", "viewer")
    assert info.value.status == 409
    stats = svc.ada.stats()
    assert stats["ledger"]["applied"] >= 1 and stats["worker"]["taken"] >= 1


def test_unreachable_service():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with Client(url, "x", timeout=5) as client, pytest.raises(ApiError) as info:
        client.health()
    err = info.value
    assert err.status is None and err.error == "ConnectionError"
    assert err.message.startswith(f"cannot reach the OneEdit service at {url}")
    assert "is `oneedit serve` running?" in err.message


# -- waiting without the event stream (a mock service) -----------------------------------------------------
def mock_service(statuses: list[str], *, stream: bool = False):
    """A transport whose edit #7 goes through ``statuses`` (one per GET); the event stream answers
    JSON (so it is unusable) unless ``stream``."""
    polls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/api/edits":
            return httpx.Response(202, json={"id": 7, "status": "queued"})
        if path == "/api/edits/7/events":
            if stream:
                body = 'event: status\ndata: {"edit": 7, "status": "pending"}\n\n' \
                       'event: status\ndata: {"edit": 7, "status": "applied"}\n\n'
                return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
            return httpx.Response(200, json={"not": "a stream"})
        if path == "/api/edits/7":
            polls.append(path)
            status = statuses[min(len(polls), len(statuses)) - 1]
            return httpx.Response(200, json={"id": 7, "status": status})
        return httpx.Response(404, json={"error": "NotFound", "message": f"no {path}"})

    return httpx.MockTransport(handler), polls


def test_wait_polls_when_the_stream_is_unusable():
    transport, polls = mock_service(["queued", "pending", "pending", "applied"])
    with Client("http://oneedit.test", "t", transport=transport) as client:
        row = client.edit("The capital of France is Lyon", timeout=10)
    assert row == {"id": 7, "status": "applied"} and len(polls) == 4


def test_wait_follows_the_stream():
    transport, polls = mock_service(["applied"], stream=True)
    with Client("http://oneedit.test", "t", transport=transport) as client:
        assert client.wait(7, 10)["status"] == "applied"
    assert len(polls) == 1


def test_wait_times_out():
    transport, _ = mock_service(["queued"])
    with Client("http://oneedit.test", "t", transport=transport) as client, pytest.raises(WaitTimeout) as info:
        client.wait(7, 0.3)
    assert info.value.edit_id == 7 and info.value.last["status"] == "queued"
    assert "not decided within 0.3 s" in info.value.message


def test_a_non_json_error_body():
    transport = httpx.MockTransport(lambda r: httpx.Response(502, text="<html>Bad gateway</html>"))
    with Client("http://oneedit.test", "t", transport=transport) as client, pytest.raises(ApiError) as info:
        client.me()
    assert info.value.status == 502 and "Bad gateway" in info.value.message
