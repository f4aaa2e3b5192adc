"""The HTTP service on a real loopback socket: auth and roles, the arrival-ordered queue, MEMIT
batching on a real tiny model, status streams, graceful shutdown and crash resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from oneedit import models
from oneedit.service.server import ServerThread, check_bind
from tests.service_support import add_users, serve_process

FINAL = {"applied", "rejected", "needs_review", "unchanged", "failed", "rolled_back"}


@pytest.fixture(scope="module")
def world_ws(tmp_path_factory) -> Path:
    """The shipped KG, no model (read-only: tests copy it)."""
    from oneedit.workspace import Workspace

    ws, _ = Workspace.init(tmp_path_factory.mktemp("svc") / "ws")
    ws.close()
    return ws.root


@pytest.fixture
def ws(world_ws, tmp_path) -> Path:
    dest = tmp_path / "ws"
    shutil.copytree(world_ws, dest)
    return dest


def users(root: Path, **roles: str) -> dict[str, str]:
    return add_users(root, roles)


def h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def wait_final(c: httpx.Client, token: str, edit_id: int, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = c.get(f"/api/edits/{edit_id}", headers=h(token)).json()
        if row["status"] in FINAL:
            return row
        time.sleep(0.05)
    raise AssertionError(f"edit #{edit_id} not decided in {timeout} s: {row['status']}")


def capital(c, token, country: str) -> list[str]:
    e = c.get(f"/api/kg/entities/{country}", headers=h(token)).json()
    return [f["object"] for f in e["facts"] if f["relation"] == "capital"]


# -- auth and roles -------------------------------------------------------------------------------------
def test_tokens_and_roles_are_enforced_on_every_endpoint(ws):
    tok = users(ws, vic="viewer", ed="editor", eve="editor", cur="curator", adm="admin")
    with ServerThread(ws, load_model=False) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        # no token, a wrong token, a revoked token: 401 with a JSON body and WWW-Authenticate
        r = c.get("/api/me")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"] == "Unauthorized" and "Bearer" in r.json()["message"]
        assert c.get("/api/me", headers=h("oe_not-a-token")).status_code == 401
        assert c.get("/api/me", headers={"Authorization": f"Basic {tok['ed']}"}).status_code == 401
        assert c.get("/api/me", headers=h(tok["vic"])).json()["role"] == "viewer"
        # the public parts need none
        assert c.get("/api/health").json()["status"] == "ok"
        spec = c.get("/openapi.json").json()
        assert "/api/edits" in spec["paths"] and "HTTPBearer" in spec["components"]["securitySchemes"]

        # viewers read and ask but cannot edit
        assert c.post("/api/parse", json={"text": "The capital of France is Lyon"}, headers=h(tok["vic"])).status_code == 200
        r = c.post("/api/edits", json={"text": "The capital of France is Lyon"}, headers=h(tok["vic"]))
        assert r.status_code == 403 and r.json()["error"] == "PermissionDenied" and "editor" in r.json()["message"]
        # editors edit; they see and roll back only their own edits
        r = c.post("/api/edits", json={"text": "The capital of France is Lyon"}, headers=h(tok["ed"]))
        assert r.status_code == 202 and r.json()["status"] == "queued" and r.headers["location"] == f"/api/edits/{r.json()['id']}"
        mine = wait_final(c, tok["ed"], r.json()["id"])
        assert mine["status"] == "applied" and capital(c, tok["vic"], "france") == ["lyon"]
        assert c.get(f"/api/edits/{mine['id']}", headers=h(tok["eve"])).status_code == 404
        assert c.post(f"/api/edits/{mine['id']}/rollback", json={}, headers=h(tok["eve"])).status_code == 404
        assert [e["id"] for e in c.get("/api/edits", headers=h(tok["eve"])).json()["edits"]] == []
        assert c.get("/api/edits", params={"author": "ed"}, headers=h(tok["eve"])).status_code == 403
        assert [e["id"] for e in c.get("/api/edits", headers=h(tok["ed"])).json()["edits"]] == [mine["id"]]
        # review, protect and users are closed to editors; users to curators
        for method, path, body in (("GET", "/api/review", None), ("POST", "/api/protect",
                                   {"subject": "Italy", "relation": "capital", "object": "Rome"})):
            r = c.request(method, path, json=body, headers=h(tok["ed"]))
            assert r.status_code == 403 and r.json()["details"]["needed"] == "curator"
        assert c.get("/api/users", headers=h(tok["cur"])).status_code == 403
        # curators see everyone's edits and roll back anyone's
        assert [e["id"] for e in c.get("/api/edits", headers=h(tok["cur"])).json()["edits"]] == [mine["id"]]
        r = c.post(f"/api/edits/{mine['id']}/rollback", json={}, headers=h(tok["cur"]))
        assert r.status_code == 200 and r.json()["rolled_back"] == [mine["id"]]
        assert capital(c, tok["vic"], "france") == ["paris"]
        # admins manage users: the token is returned once and works at once; a deactivated one stops
        r = c.post("/api/users", json={"name": "newbie", "role": "editor"}, headers=h(tok["adm"]))
        assert r.status_code == 201 and r.json()["token"].startswith("oe_")
        new = r.json()["token"]
        assert c.get("/api/me", headers=h(new)).json()["name"] == "newbie"
        assert "token" not in json.dumps(c.get("/api/users", headers=h(tok["adm"])).json())
        assert c.post("/api/users", json={"name": "newbie", "role": "editor"}, headers=h(tok["adm"])).status_code == 409
        assert c.patch("/api/users/newbie", json={"active": False}, headers=h(tok["adm"])).json()["active"] is False
        assert c.get("/api/me", headers=h(new)).status_code == 401


def test_bad_requests_get_json_errors_and_leave_no_row(ws):
    tok = users(ws, ed="editor")
    with ServerThread(ws, load_model=False) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        cases = [({"text": "hello there"}, 400, "ParseError"),
                 ({"text": ""}, 422, "InvalidRequest"),
                 ({"text": "x", "colour": "red"}, 422, "InvalidRequest"),
                 ({"triples": [{"op": "retract", "subject": "Atlantis", "relation": "capital", "object": "Lyon"}]},
                  400, "UnknownEntityError"),
                 ({"triples": [{"subject": "Portland", "relation": "country", "object": "France"}]}, 409,
                  "AmbiguousRequest"),
                 ({"triples": [{"subject": "France", "relation": "favourite food", "object": "Lyon"}]}, 400, None),
                 ({"text": "What is the capital of France?"}, 400, "OneEditError")]
        for body, status, name in cases:
            r = c.post("/api/edits", json=body, headers=h(tok["ed"]))
            assert r.status_code == status, (body, r.text)
            assert r.json()["message"]
            if name:
                assert r.json()["error"] == name
        assert c.get("/api/stats", headers=h(tok["ed"])).json()["ledger"] == {}
        assert c.get("/api/kg/entities/Atlantis", headers=h(tok["ed"])).status_code == 404
        # a follow-up reads against the focus the page sends (the last turn), and only with one
        focus = {"subject": "peru", "relation": "capital"}
        r = c.post("/api/parse", json={"text": "Change it to Cusco", "focus": focus}, headers=h(tok["ed"])).json()
        assert r["parser"] == "context" and r["intents"][0]["op"] == "replace"
        obj = r["intents"][0]["object"]
        assert r["intents"][0]["subject"]["id"] == "peru" and (obj.get("id") or obj.get("new")) in ("cusco", "Cusco")
        assert c.post("/api/parse", json={"text": "Change it to Cusco"}, headers=h(tok["ed"])).status_code == 400
        a = c.post("/api/ask", json={"text": "and Chile's?", "focus": focus}, headers=h(tok["ed"])).json()
        assert a["answers"][0]["kg"] == ["Santiago"]
        r = c.post("/api/parse", json={"text": "and Chile's?", "focus": {"subject": "atlantis", "relation": "capital"}},
                   headers=h(tok["ed"]))
        assert r.status_code == 400 and "names no entity" in r.json()["message"]
        assert c.get("/api/nowhere", headers=h(tok["ed"])).json()["error"] == "NotFound"


def test_non_loopback_bind_needs_an_explicit_flag(ws):
    assert check_bind("127.0.0.1", False) is None and check_bind("::1", False) is None
    assert check_bind("localhost", False) is None
    with pytest.raises(Exception, match="--allow-remote"):
        check_bind("0.0.0.0", False)
    assert "TLS" in check_bind("0.0.0.0", True)
    r = subprocess.run([sys.executable, "-m", "oneedit", "serve", "--host", "0.0.0.0", "--port", "0", "-w", str(ws)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--allow-remote" in r.stderr + r.stdout


# -- the queue ----------------------------------------------------------------------------------------
def test_two_users_on_one_functional_fact_resolve_in_arrival_order(ws):
    tok = users(ws, ann="editor", ben="editor", cur="curator")
    with ServerThread(ws, load_model=False, window=0.3) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        a = c.post("/api/edits", json={"text": "The capital of France is Lyon"}, headers=h(tok["ann"])).json()
        b = c.post("/api/edits", json={"triples": [{"subject": "France", "relation": "capital",
                                                      "object": "Marseille"}]}, headers=h(tok["ben"])).json()
        assert a["id"] < b["id"]
        a, b = wait_final(c, tok["ann"], a["id"]), wait_final(c, tok["ben"], b["id"])
        assert a["status"] == b["status"] == "applied"
        # the first replaced Paris; the second saw the first's Lyon as its conflict
        assert {x["fact"]["object"] for x in a["plan"]["conflicts"]} == {"paris"}
        assert {x["fact"]["object"] for x in b["plan"]["conflicts"]} == {"lyon"}
        assert capital(c, tok["ann"], "france") == ["marseille"]
        # the same request again is "unchanged": a decision, not an error
        again = c.post("/api/edits", json={"text": "The capital of France is Marseille"}, headers=h(tok["ann"])).json()
        assert wait_final(c, tok["ann"], again["id"])["status"] == "unchanged"
        # Ann's edit cannot be rolled back alone: Ben's builds on it
        r = c.post(f"/api/edits/{a['id']}/rollback", json={}, headers=h(tok["cur"]))
        assert r.status_code == 409 and r.json()["details"]["dependents"] == [b["id"]]
        r = c.post(f"/api/edits/{a['id']}/rollback", json={"cascade": True}, headers=h(tok["cur"]))
        assert r.json()["rolled_back"] == [b["id"], a["id"]] and capital(c, tok["ann"], "france") == ["paris"]


def test_status_streams_as_server_sent_events(ws):
    tok = users(ws, ed="editor", cur="curator")
    with ServerThread(ws, load_model=False) as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        seen_all: list[dict] = []

        def follow_all():
            with c.stream("GET", "/api/events", headers=h(tok["cur"])) as s:
                for line in s.iter_lines():
                    if line.startswith("data:"):
                        seen_all.append(json.loads(line[5:]))
                        if seen_all[-1].get("status") == "applied":
                            return

        t = threading.Thread(target=follow_all, daemon=True)
        t.start()
        time.sleep(0.3)
        r = c.post("/api/edits", json={"text": "The capital of Italy is Milan"}, headers=h(tok["ed"])).json()
        statuses = []
        with c.stream("GET", f"/api/edits/{r['id']}/events", headers=h(tok["ed"])) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            for line in s.iter_lines():
                if line.startswith("data:"):
                    statuses.append(json.loads(line[5:])["status"])
        # the stream starts with the status now and ends at the decision
        assert statuses[-1] == "applied" and statuses[0] in ("queued", "pending", "applied")
        assert statuses == sorted(statuses, key=["queued", "pending", "applied"].index)
        t.join(10)
        assert [e["status"] for e in seen_all if e.get("edit") == r["id"]][-1] == "applied"
        # a stream of a decided edit sends its status and closes
        with c.stream("GET", f"/api/edits/{r['id']}/events", headers=h(tok["ed"])) as s:
            data = [json.loads(x[5:]) for x in s.iter_lines() if x.startswith("data:")]
        assert [d["status"] for d in data] == ["applied"]


def test_shutdown_leaves_queued_edits_queued_and_a_restart_applies_them(ws):
    tok = users(ws, ed="editor")
    texts = ["The capital of Italy is Milan", "The capital of Spain is Barcelona", "The capital of France is Lyon"]
    srv = ServerThread(ws, load_model=False).start()
    gate = threading.Event()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            # the worker is busy (a long job), so the edits wait in the queue
            busy = threading.Thread(target=srv.service.worker.call, args=(lambda s: gate.wait(30),), daemon=True)
            busy.start()
            time.sleep(0.2)
            ids = [c.post("/api/edits", json={"text": t}, headers=h(tok["ed"])).json()["id"] for t in texts]
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            time.sleep(0.3)
            gate.set()
            stopper.join(30)
    finally:
        gate.set()
    with _ledger(ws) as led:
        assert [led.get(i).status for i in ids] == ["queued"] * 3  # none lost, none half-done
    with ServerThread(ws, load_model=False) as srv2, httpx.Client(base_url=srv2.url, timeout=30) as c:
        assert srv2.service.resumed == ids
        assert [wait_final(c, tok["ed"], i)["status"] for i in ids] == ["applied"] * 3
        assert capital(c, tok["ed"], "spain") == ["barcelona"]


class _ledger:
    def __init__(self, root):
        from oneedit.ledger import Ledger

        self.led = Ledger(root / "ledger.sqlite")

    def __enter__(self):
        return self.led

    def __exit__(self, *exc):
        self.led.close()


def test_a_killed_server_undoes_the_edit_in_flight_and_the_restart_applies_it(ws):
    tok = users(ws, ed="editor")
    proc, url = serve_process(ws, {"ONEEDIT_CRASH_AT": "model"})  # SIGKILL after the KG change, before "applied"
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            edit = c.post("/api/edits", json={"text": "The capital of Spain is Barcelona"}, headers=h(tok["ed"])).json()
            assert proc.wait(60) == -signal.SIGKILL
    finally:
        proc.kill()
    with _ledger(ws) as led:
        assert led.get(edit["id"]).status == "pending"  # what the crash left
    proc, url = serve_process(ws)
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            row = wait_final(c, tok["ed"], edit["id"])
            assert row["status"] == "applied" and row["attempts"] == 1
            assert row["interrupted"][0]["stage"] == "model" and row["interrupted"][0]["reverted_kg"]
            assert capital(c, tok["ed"], "spain") == ["barcelona"]
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1])["event"] == "stopped"
    finally:
        proc.kill()
    # one revision applies Barcelona; the interrupted one was reverted, so the KG log balances
    from oneedit.workspace import Workspace

    with Workspace.open(ws) as w:
        assert w.kg.store.objects("spain", "capital") == ["barcelona"]


# -- the model worker (tiny trained model) -----------------------------------------------------------------
def test_edits_close_together_share_one_memit_batch_and_the_model_learns_them(copy_ws):
    tok = users(copy_ws, ann="editor", ben="editor")
    edits = [("ann", "The capital of Germany is Hamburg"), ("ben", "The capital of Italy is Palermo"),
             ("ann", "The capital of Italy is Detmold"), ("ben", "The capital of Austria is Osnabrück")]
    with ServerThread(copy_ws, window=1.0, max_batch=8) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        srv.wait_ready()
        ids = [c.post("/api/edits", json={"text": t}, headers=h(tok[u])).json()["id"] for u, t in edits]
        rows = [wait_final(c, tok[u], i) for (u, _), i in zip(edits, ids, strict=True)]
        assert [r["status"] for r in rows] == ["applied"] * 4
        # one MEMIT batch carried all four; Ben's Palermo was replaced by Ann's Detmold within it
        model_ids = {r["model_edit"]["id"] for r in rows}
        assert model_ids == {f"b{ids[0]}"} and rows[0]["model_edit"]["shared_with"] == ids
        stats = c.get("/api/stats", headers=h(tok["ann"])).json()["worker"]
        assert stats["memit_batches"] == 1 and stats["avg_batch_size"] == 4.0
        assert {x["fact"]["object"] for x in rows[2]["plan"]["conflicts"]} == {"palermo"}
        # its fact no longer holds after the batch; what it left is Rome being the capital of nothing
        assert rows[1]["model_edit"]["own_facts"] == [["rome", "capital_of", "oneedit:unknown"]]
        # the KG and the model agree on every applied fact
        for q, want in (("What is the capital of Germany?", "Hamburg"), ("What is the capital of Italy?", "Detmold"),
                        ("What is the capital of Austria?", "Osnabrück")):
            a = c.post("/api/ask", json={"text": q}, headers=h(tok["ben"])).json()["answers"][0]
            assert a["kg"] == [want] and a["model"].startswith(want) and a["agree"], a
        # before/after answers are kept per edit for the page
        answers = rows[0]["model_edit"]["answers"]
        assert any(x["prompt"].startswith("The capital of Germany") and x["after"].startswith("Hamburg") for x in answers)
        # a rollback of one line re-writes the others' facts; the model follows the KG
        r = c.post(f"/api/edits/{ids[0]}/rollback", json={}, headers=h(tok["ann"])).json()
        assert r["details"][0]["model"]["rewritten_as"]
        a = c.post("/api/ask", json={"text": "What is the capital of Germany?"}, headers=h(tok["ann"])).json()
        assert a["answers"][0]["kg"] == ["Berlin"] and a["answers"][0]["model"].startswith("Berlin")
        a = c.post("/api/ask", json={"text": "What is the capital of Austria?"}, headers=h(tok["ann"])).json()
        assert a["answers"][0]["model"].startswith("Osnabrück")
        # the audit: the live edits' facts are the edited group, the rest unedited
        audit = c.get("/api/audit", headers=h(tok["ben"])).json()
        assert {"edited", "unedited", "all", "disagreements"} <= set(audit)
        assert audit["edited"]["facts"] >= 2 and audit["all"]["facts"] == audit["edited"]["facts"] + audit["unedited"]["facts"]
        assert audit["all"]["agreement"] >= 0.8
        sampled = c.get("/api/audit", params={"sample": 25}, headers=h(tok["ben"])).json()
        assert sampled["all"]["facts"] == 25 and len(sampled["all"]["facts_agreeing_ci95"]) == 2
        assert c.get("/api/audit", params={"sample": 0}, headers=h(tok["ben"])).status_code == 422
        assert c.get("/api/audit").status_code == 401


def test_grace_edits_reach_the_model_in_arrival_order(copy_ws):
    tok = users(copy_ws, ed="editor")
    with ServerThread(copy_ws, window=0.5) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        srv.wait_ready()
        ids = [c.post("/api/edits", json={"text": t, "method": "grace"}, headers=h(tok["ed"])).json()["id"]
               for t in ("The capital of Germany is Hamburg", "The capital of Germany is Detmold")]
        rows = [wait_final(c, tok["ed"], i) for i in ids]
        assert [r["status"] for r in rows] == ["applied", "applied"]
        assert [r["model_edit"]["id"] for r in rows] == [f"e{i}" for i in ids]
        # the worker counts an edit just after the ledger says applied: give it that moment
        deadline = time.monotonic() + 10
        while srv.service.worker.stats.singles < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.service.worker.stats.batches == 0 and srv.service.worker.stats.singles == 2
        order = srv.system.model.edit_ids()
        assert order.index(f"e{ids[0]}") < order.index(f"e{ids[1]}")
        a = c.post("/api/ask", json={"text": "What is the capital of Germany?"}, headers=h(tok["ed"])).json()["answers"][0]
        assert a["kg"] == ["Detmold"] and a["model"].startswith("Detmold")


def test_the_service_consolidates_in_the_background_while_edits_go_on(copy_ws):
    from oneedit.config import WorkspaceConfig

    cfg = WorkspaceConfig.load(copy_ws)
    # audit a sample after every model edit; any disagreement at all starts a consolidation
    cfg.consistency.consolidate_below, cfg.consistency.audit_every, cfg.consistency.audit_sample = 1.01, 1, 40
    cfg.save(copy_ws)
    tok = users(copy_ws, ed="editor")
    with ServerThread(copy_ws, window=0.2) as srv, httpx.Client(base_url=srv.url, timeout=60) as c:
        srv.wait_ready()
        sleep = srv.service.worker.sleep
        first = c.post("/api/edits", json={"text": "The capital of Germany is Hamburg"}, headers=h(tok["ed"])).json()
        assert wait_final(c, tok["ed"], first["id"])["status"] == "applied"
        deadline = time.monotonic() + 60
        while not sleep.running and not sleep.history and time.monotonic() < deadline:
            time.sleep(0.05)
        state = c.get("/api/stats", headers=h(tok["ed"])).json()["consolidation"]
        assert state["below"] == 1.01 and (state["running"] or state["consolidations"])
        # an edit made while the model trains is applied at once, by the live model
        started = time.monotonic()
        late = c.post("/api/edits", json={"text": "The capital of Italy is Palermo"}, headers=h(tok["ed"])).json()
        assert wait_final(c, tok["ed"], late["id"])["status"] == "applied"
        if sleep.running:
            assert time.monotonic() - started < 60
        deadline = time.monotonic() + 600
        while not sleep.history and time.monotonic() < deadline:
            time.sleep(0.2)
        done = sleep.history[0]
        sleep.below = 0  # no second one
        assert done["status"] == "done" and done["consolidation"] == 1, done
        assert done["folded_edits"] >= 1
        live, edit_ids = srv.service.worker.call(lambda s: (models.weights_dir(s.ws).name, s.model.edit_ids()))
        assert live == "1"  # the consolidated weights are the live ones
        assert not [i for i in edit_ids if i.startswith("b")]  # the batches are folded, not stacked
        # both edits are in the model: the first learned by the new weights, the late one either
        # folded in too or re-written onto them at the swap
        for q, want in (("What is the capital of Germany?", "Hamburg"), ("What is the capital of Italy?", "Palermo")):
            a = c.post("/api/ask", json={"text": q}, headers=h(tok["ed"])).json()["answers"][0]
            assert a["kg"] == [want] and a["model"].startswith(want), a
        # a rollback after the swap reaches the model
        c.post(f"/api/edits/{first['id']}/rollback", json={}, headers=h(tok["ed"])).raise_for_status()
        a = c.post("/api/ask", json={"text": "What is the capital of Germany?"}, headers=h(tok["ed"])).json()
        assert a["answers"][0]["model"].startswith("Berlin"), a
