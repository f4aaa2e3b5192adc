"""What a hostile or careless user tried (issue 16's reproductions), each a regression test on a
real loopback server or the real CLI: oversized bodies, question floods, ids beyond int64, bad
path parameters and query values, loose booleans, echoed oversize input."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import httpx
import pytest

from oneedit.service.server import ServerThread
from tests.service_support import add_users, new_workspace


@pytest.fixture(scope="module")
def base_ws(tmp_path_factory) -> Path:
    return new_workspace(tmp_path_factory.mktemp("hostile") / "ws")


@pytest.fixture(scope="module")
def server(base_ws, tmp_path_factory):
    """One server (no model) for the module, with a viewer, an editor and a curator."""
    root = tmp_path_factory.mktemp("hostile-srv") / "ws"
    shutil.copytree(base_ws, root)
    tokens = add_users(root, {"vic": "viewer", "ed": "editor", "cur": "curator"})
    with ServerThread(root, load_model=False) as srv:
        srv.tokens = tokens
        yield srv


def h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_d4_an_oversized_body_is_refused_before_authentication(server):
    limit = server.system.ws.config.service.max_body_bytes
    with httpx.Client(base_url=server.url, timeout=30) as c:
        # declared too large: 413, no token needed to be refused, nothing read
        r = c.post("/api/edits", content=b"x" * (limit + 1), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
        assert f"{limit:,}" in r.json()["message"]
        # the same with a token: still 413, and no ledger row
        before = server.system.ledger.count()
        r = c.post("/api/edits", content=b"{" + b" " * (limit + 10) + b"}", headers=h(server.tokens["ed"]))
        assert r.status_code == 413 and server.system.ledger.count() == before

        # a chunked body without Content-Length is counted as it streams
        def chunks():
            for _ in range(limit // 65536 + 2):
                yield b" " * 65536

        r = c.post("/api/edits", content=chunks(), headers=h(server.tokens["ed"]) | {"Content-Type": "application/json"})
        assert r.status_code == 413
        # a body under the limit goes on to authentication as before
        assert c.post("/api/edits", json={"text": "x"}).status_code == 401


def test_d4_a_client_that_declares_a_huge_body_is_not_waited_for(server):
    """The 413 goes out on the headers alone: the body is never sent, let alone read."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"POST /api/edits HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 200000000\r\n\r\n")
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")


def test_d5_questions_are_bounded_per_request_and_rate_limited_per_user(server):
    cfg = server.system.ws.config.service
    with httpx.Client(base_url=server.url, timeout=60) as c:
        many = " ".join(["What is the capital of France?"] * (cfg.max_questions + 1))
        r = c.post("/api/ask", json={"text": many}, headers=h(server.tokens["vic"]))
        assert r.status_code == 422 and f"at most {cfg.max_questions}" in r.json()["message"]
        jobs = server.service.worker.stats.jobs
        r = c.post("/api/ask", json={"text": "What is the capital of France? Who is the CEO of Apple?"},
                   headers=h(server.tokens["vic"]))
        assert r.status_code == 200 and [a["kg"] for a in r.json()["answers"]] == [["Paris"], ["Tim Cook"]]
        # each question was its own turn on the worker: edits queued meanwhile go between them
        assert server.service.worker.stats.jobs - jobs == 2
        # the per-user window: the next questions past the limit get a 429 with Retry-After
        server.service.questions.limit = 4
        try:
            codes = [c.post("/api/ask", json={"text": "Who is the CEO of Apple?"},
                            headers=h(server.tokens["vic"])).status_code for _ in range(4)]
            assert codes == [200, 200, 429, 429]  # 2 asked above + 2 = the limit of 4
            r = c.post("/api/ask", json={"text": "Who is the CEO of Apple?"}, headers=h(server.tokens["vic"]))
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
            # another user's window is their own
            assert c.post("/api/ask", json={"text": "Who is the CEO of Apple?"},
                          headers=h(server.tokens["ed"])).status_code == 200
        finally:
            server.service.questions.limit = cfg.questions_per_minute


@pytest.mark.parametrize("path,method", [
    ("/api/edits/9223372036854775808", "GET"),
    ("/api/edits/99999999999999999999999", "GET"),
    ("/api/edits/9223372036854775808/events", "GET"),
    ("/api/edits/9223372036854775808/rollback", "POST"),
    ("/api/review/9223372036854775808/approve", "POST"),
    ("/api/review/9223372036854775808/reject", "POST"),
    ("/api/edits/0", "GET"),
    ("/api/edits/-5", "GET"),
])
def test_d9_ids_beyond_int64_are_404_not_500(server, path, method):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.request(method, path, headers=h(server.tokens["cur"]))
    assert r.status_code == 404, r.text
    assert r.json()["error"] == "NotFound"


def test_d12_a_bad_path_parameter_is_named_as_such(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.get("/api/edits/abc", headers=h(server.tokens["cur"]))
    assert r.status_code == 422
    assert r.json()["message"].startswith("The address (a path parameter) is not valid")
    assert "body" not in r.json()["message"]


def test_d12_an_unknown_status_filter_is_an_error_not_an_empty_list(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.get("/api/edits", params={"status": "bogus"}, headers=h(server.tokens["cur"]))
    assert r.status_code == 400 and "bogus" in r.json()["message"] and "applied" in r.json()["hint"]


@pytest.mark.parametrize("body", [{"text": "The capital of France is Lyon", "dry_run": "yes"},
                                  {"text": "The capital of France is Lyon", "dry_run": 1}])
def test_d12_booleans_are_booleans(server, body):
    before = server.system.ledger.count()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/api/edits", json=body, headers=h(server.tokens["ed"]))
    assert r.status_code == 422 and "dry_run" in r.json()["message"]
    assert server.system.ledger.count() == before


def test_d12_an_oversize_protect_name_is_refused_not_echoed(server):
    name = "A" * 100_000
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/api/protect", json={"subject": name, "relation": "capital", "object": "Paris"},
                   headers=h(server.tokens["cur"]))
    assert r.status_code == 422 and len(r.content) < 2_000


# -- D6: control, NUL and direction characters; ids ------------------------------------------------
EVIL = "Por\u0000to\u001b[2J\u202eevil"


def test_d6_control_characters_are_refused_on_the_structured_path_and_leave_nothing(server):
    head = server.system.kg.store.head()
    before = server.system.ledger.count()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post("/api/edits", json={"triples": [{"subject": "Portugal", "relation": "capital", "object": EVIL}]},
                   headers=h(server.tokens["ed"]))
        assert r.status_code == 400, r.text
        msg = r.json()["message"]
        assert "U+0000 (NUL)" in msg and "\x00" not in msg and "\x1b" not in msg
        r = c.post("/api/edits", json={"text": f"The capital of Portugal is {EVIL}"}, headers=h(server.tokens["ed"]))
        assert r.status_code == 400 and "cannot be stored" in r.json()["message"]
    assert server.system.kg.store.head() == head and server.system.ledger.count() == before


@pytest.mark.parametrize("rows,problem", [
    ("../../etc/passwd,type,City\n../../etc/passwd,label,Evil\n", "not a valid entity id"),
    ("lisbon,label,Lis\x00bon\n", "U+0000 (NUL)"),
    ("lisbon,alias,Lis\u202ebon\n", "U+202E"),
])
def test_d6_kg_import_refuses_unsafe_ids_and_names(base_ws, tmp_path, rows, problem):
    from typer.testing import CliRunner

    from oneedit.cli import app

    root = tmp_path / "ws"
    shutil.copytree(base_ws, root)
    f = tmp_path / "evil.csv"
    f.write_text(rows, encoding="utf-8")
    res = CliRunner().invoke(app, ["kg", "import", str(f), "--workspace", str(root), "--json"])
    assert res.exit_code != 0 and problem in res.output, res.output
    assert "Traceback" not in res.output and "\x00" not in res.output
    from oneedit.workspace import Workspace

    with Workspace.open(root) as ws:
        assert ws.kg.store.entity("lisbon").label == "Lisbon"
        assert not [t for t in ws.kg.store.triples("../../etc/passwd")]


def test_d6_a_bulk_loaded_file_with_an_escaped_control_character_is_refused(tmp_path):
    from controller.stores.embedded import EmbeddedStore
    from oneedit.core import StoreError
    import pyoxigraph as ox

    store = EmbeddedStore(tmp_path / "kg")
    try:
        e, r = store.terms.e, store.terms.r
        f = tmp_path / "x.nt"
        f.write_text(f'<{e}x> <{r}capital> <{e}y> .\n<{e}x> <{store.terms.META_TO_IRI["label"]}> "a\\u0000b" .\n',
                     encoding="utf-8")
        with pytest.raises(StoreError, match="line 2: a control"):
            store.load_rdf_file(f, ox.RdfFormat.N_TRIPLES, "t", "load")
        f.write_text(f"<{e}../x> <{r}capital> <{e}y> .\n", encoding="utf-8")
        with pytest.raises(StoreError, match="line 1"):
            store.load_rdf_file(f, ox.RdfFormat.N_TRIPLES, "t", "load")
        assert len(list(store.triples())) == 0
    finally:
        store.close()


# -- D3, D10: export -------------------------------------------------------------------------------------
def _cli(*args):
    from typer.testing import CliRunner

    from oneedit.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_d3_export_never_writes_into_the_workspace_or_over_a_file(base_ws, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(base_ws, root)
    ledger = (root / "ledger.sqlite").read_bytes()
    res = _cli("kg", "export", "--format", "csv", "--out", root / "ledger.sqlite", "--workspace", root, "--json")
    assert res.exit_code == 1 and "inside the workspace" in res.output
    assert (root / "ledger.sqlite").read_bytes() == ledger
    assert _cli("history", "--workspace", root, "--json").exit_code == 0  # the workspace still works

    mine = tmp_path / "notes.csv"
    mine.write_text("my own notes\n")
    res = _cli("kg", "export", "--format", "csv", "--out", mine, "--workspace", root, "--json")
    assert res.exit_code == 1 and "--force" in res.output and mine.read_text() == "my own notes\n"
    res = _cli("kg", "export", "--format", "csv", "--out", mine, "--force", "--workspace", root, "--json")
    assert res.exit_code == 0 and mine.read_text().startswith("subject,relation,object")
    assert not list(tmp_path.glob(".notes.csv.*"))  # no temporary file left beside it


@pytest.mark.parametrize("where,message", [("folder", "is a folder"), ("missing/kg.ttl", "does not exist")])
def test_d10_export_to_a_folder_or_a_missing_folder_is_a_message(base_ws, tmp_path, where, message):
    (tmp_path / "folder").mkdir()
    res = _cli("kg", "export", "--out", tmp_path / where, "--workspace", base_ws, "--json")
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output


def test_d10_a_full_disk_leaves_no_partial_export(base_ws, tmp_path):
    """/dev/full answers every write with ENOSPC: the message says so and nothing is left."""
    from oneedit.core import OneEditError
    from oneedit.core.files import output_file

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    target = tmp_path / "kg.ttl"
    with pytest.raises(OneEditError, match="disk is full"):
        with output_file(target) as tmp:
            with open("/dev/full", "wb") as full, open(tmp, "wb") as out:
                out.write(b"partial")
                full.write(b"x" * 65536)
                full.flush()
    assert not target.exists() and list(tmp_path.iterdir()) == []


# -- D1: a cascade reaches only what the caller may roll back --------------------------------------------
def _wait(c, token, edit_id, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = c.get(f"/api/edits/{edit_id}", headers=h(token)).json()
        if row["status"] not in ("queued", "pending"):
            return row
        time.sleep(0.05)
    raise AssertionError(f"edit #{edit_id} not decided")


def test_d1_an_editors_cascade_cannot_roll_back_a_curators_edit(server):
    ed, cur = server.tokens["ed"], server.tokens["cur"]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        mine = c.post("/api/edits", json={"text": "The capital of Italy is Milan"}, headers=h(ed)).json()["id"]
        assert _wait(c, ed, mine)["status"] == "applied"
        theirs = c.post("/api/edits", json={"text": "The capital of Italy is Naples"}, headers=h(cur)).json()["id"]
        assert _wait(c, cur, theirs)["status"] == "applied"
        trust = server.system.users.get("cur").trust

        r = c.post(f"/api/edits/{mine}/rollback", json={}, headers=h(ed))
        assert r.status_code == 409
        body = r.json()
        assert f"#{theirs}" not in body["message"] and "1 edit(s) by other users" in body["message"]
        assert body["details"]["dependents"] == [] and body["details"]["others"] == 1

        r = c.post(f"/api/edits/{mine}/rollback", json={"cascade": True}, headers=h(ed))
        assert r.status_code == 403 and "other users" in r.json()["message"]
        assert c.get(f"/api/edits/{theirs}", headers=h(cur)).json()["status"] == "applied"
        assert c.get(f"/api/edits/{mine}", headers=h(ed)).json()["status"] == "applied"
        assert server.system.users.get("cur").trust == trust

        # a curator may: both go, newest first
        r = c.post(f"/api/edits/{mine}/rollback", json={"cascade": True}, headers=h(cur))
        assert r.status_code == 200 and r.json()["rolled_back"] == [theirs, mine]


# -- D8, D11: import ---------------------------------------------------------------------------------------
def test_d8_import_keys_lines_by_file_content_not_file_name(base_ws, tmp_path):
    import json

    root = tmp_path / "ws"
    shutil.copytree(base_ws, root)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x.txt").write_text("The capital of Spain is Barcelona\n")
    res = _cli("import", tmp_path / "a" / "x.txt", "--workspace", root, "--json")
    assert res.exit_code == 0 and json.loads(res.output)["applied"] == 1
    assert _cli("edit", "The capital of Spain is Madrid", "--yes", "--workspace", root, "--json").exit_code == 0
    # another file of the same name and line: applied, not skipped as "done"
    (tmp_path / "b" / "x.txt").write_text("The capital of Spain is Barcelona\nThe capital of Peru is Cusco\n")
    out = json.loads(_cli("import", tmp_path / "b" / "x.txt", "--workspace", root, "--json").output)
    assert (out["applied"], out["skipped"]) == (2, 0)
    # the same file again: its lines are done
    out = json.loads(_cli("import", tmp_path / "b" / "x.txt", "--workspace", root, "--json").output)
    assert (out["applied"], out["skipped"]) == (0, 2)


def test_d11_an_import_with_failed_lines_exits_non_zero_and_all_or_nothing_applies_none(base_ws, tmp_path):
    import json

    from oneedit.workspace import Workspace

    root = tmp_path / "ws"
    shutil.copytree(base_ws, root)
    f = tmp_path / "mixed.txt"
    f.write_text("The capital of Peru is Cusco\nthis line means nothing at all\n"
                 "Olaf Scholz's wife is Fucking Bitch\n")
    with Workspace.open(root) as ws:
        head, rows = ws.kg.store.head(), ws.ledger.count()
    res = _cli("import", f, "--all-or-nothing", "--workspace", root, "--json")
    assert res.exit_code == 1, res.output
    err = json.loads(res.output)
    assert "nothing was applied" in err["message"] and "line 2" in err["message"] and "line 3" in err["message"]
    with Workspace.open(root) as ws:
        assert (ws.kg.store.head(), ws.ledger.count()) == (head, rows)
        assert ws.kg.store.objects("peru", "capital") == ["lima"]
    res = _cli("import", f, "--workspace", root, "--json")
    out = json.loads(res.output)
    assert res.exit_code == 3 and (out["applied"], out["failed"], out["rejected"]) == (1, 1, 1)


# -- D10, D12: messages, not tracebacks ----------------------------------------------------------------
@pytest.mark.parametrize("victim", ["ledger.sqlite", "kg/revisions.sqlite"])
def test_d10_a_corrupt_database_is_named_not_a_traceback(base_ws, tmp_path, victim):
    import json

    root = tmp_path / "ws"
    shutil.copytree(base_ws, root)
    (root / victim).write_bytes(b"this is not a database" * 100)
    res = _cli("history", "--workspace", root, "--json")
    assert res.exit_code == 1 and "Traceback" not in res.output
    err = json.loads(res.output)
    assert victim.split("/")[-1] in err["message"] and "not a readable SQLite database" in err["message"]


def test_d10_a_corrupt_edit_manifest_is_named(tmp_path):
    from oneedit.core import OneEditError
    from tests.tiny_models import editable

    state = tmp_path / "edits"
    state.mkdir()
    (state / "edits.json").write_text("{not json")
    with pytest.raises(OneEditError, match="edits.json is not a readable edit manifest"):
        editable("gpt2", state_dir=state)


def test_d10_workspace_pointing_at_a_file_and_import_of_odd_paths(base_ws, tmp_path):
    import json
    import os

    f = tmp_path / "afile"
    f.write_text("x")
    res = _cli("history", "--workspace", f, "--json")
    assert res.exit_code == 1 and "is a file, not a workspace folder" in json.loads(res.output)["message"]
    root = tmp_path / "ws"
    shutil.copytree(base_ws, root)
    (tmp_path / "adir").mkdir()
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    (tmp_path / "latin1.csv").write_bytes("lisbon,label,Lisb\u00e3o\n".encode("latin-1"))
    for args, message in ((("import", tmp_path / "adir"), "is a folder, not a file"),
                          (("import", tmp_path / "loop"), "points back to itself"),
                          (("kg", "import", tmp_path / "loop"), "points back to itself"),
                          (("kg", "import", tmp_path / "latin1.csv"), "line 1: not valid UTF-8 (byte 0xE3)")):
        res = _cli(*args, "--workspace", root, "--json")
        assert res.exit_code == 1 and message in json.loads(res.output)["message"], res.output


def test_d12_bad_utf8_on_stdin_is_named_as_such(base_ws, tmp_path):
    import subprocess
    import sys

    root = tmp_path / "ws"
    shutil.copytree(base_ws, root)
    out = subprocess.run([sys.executable, "-m", "oneedit", "chat", "--workspace", str(root), "--json"],
                         input=b"The capital of France is Lyo\xffn\n", capture_output=True, timeout=120)
    assert b"Traceback" not in out.stderr
    event = __import__("json").loads(out.stdout.decode().splitlines()[0])["events"][0]
    assert "0xFF, which is not valid UTF-8" in event["message"]


def test_environment_errors_become_messages(tmp_path):
    import sqlite3

    from oneedit.cli.output import environment_error

    db = tmp_path / "x.sqlite"
    sqlite3.connect(db).execute("CREATE TABLE t (a)").connection.commit()
    ro = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as exc:
        ro.execute("INSERT INTO t VALUES (1)")
    assert "read-only" in environment_error(exc.value).message
    with pytest.raises(OSError) as exc:
        open("/dev/full", "wb").write(b"x" * 65536) if Path("/dev/full").exists() else open("/nonexistent/x")
    assert "Traceback" not in environment_error(exc.value).message


# -- D7: a model that cannot be written changes nothing ------------------------------------------------
def test_d7_an_unwritable_model_folder_leaves_no_half_made_edit(copy_ws):
    import json

    from oneedit.system import OneEdit

    with OneEdit.open(copy_ws) as oe:
        state = oe.model.state_dir
        head, rows = oe.kg.store.head(), oe.ledger.count()
    shutil.rmtree(state, ignore_errors=True)
    state.write_text("a file where the edit folder should be")  # unwritable even for root
    res = _cli("edit", "The capital of Italy is Milan", "--yes", "--workspace", copy_ws, "--json")
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    err = json.loads(res.output)
    assert "cannot be written" in err["message"] and "nothing was changed" in err["message"]
    with OneEdit.open(copy_ws, load_model=False) as oe:
        assert (oe.kg.store.head(), oe.ledger.count()) == (head, rows)
        assert oe.kg.store.objects("italy", "capital") == ["rome"]
        assert oe.ledger.count("pending") == 0


def test_d7_a_model_edit_that_fails_midway_is_undone_in_process(copy_ws, monkeypatch):
    """The write check passes, then the model edit itself fails: the KG revision is reverted and the
    row is failed with the error, in the same process (not at the next start)."""
    from oneedit.core import OneEditError
    from oneedit.system import OneEdit

    with OneEdit.open(copy_ws) as oe:
        head = oe.kg.store.head()

        def broken(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(oe.sync, "_write", broken)
        with pytest.raises(OneEditError, match="put back as they were") as exc:
            oe.submit("The capital of Italy is Milan")
        [edit_id] = exc.value.details["edits"]
        assert oe.ledger.get(edit_id).status == "failed"
        assert "No space left" in oe.ledger.get(edit_id).record.error["error"]
        assert oe.kg.store.objects("italy", "capital") == ["rome"]
        assert oe.kg.store.head() > head  # the revert is a revision of its own: history keeps both
        assert oe.ledger.count("pending") == 0


# -- D2: kg commands recover first ------------------------------------------------------------------------
def test_d2_kg_commands_undo_an_interrupted_edit_before_they_read_or_write(base_ws, tmp_path):
    import json

    from tests.process_support import cli

    root = tmp_path / "ws"
    shutil.copytree(base_ws, root)
    crashed = cli(root, "edit", "The capital of France is Lyon", "--yes", crash="kg")
    assert crashed.returncode == -9  # killed with the KG changed and the edit pending
    # the first kg command sees the KG as it was, not the half-applied edit
    out = json.loads(cli(root, "kg", "query", "--subject", "France", "--relation", "capital").stdout)
    assert [f["object"]["label"] for f in out["facts"]] == ["Paris"]
    # building on it is building on Paris: a later recovery has nothing left to revert blindly
    assert cli(root, "kg", "remove", "France", "capital", "Paris").returncode == 0
    assert cli(root, "kg", "add", "France", "capital", "Marseille").returncode == 0
    assert cli(root, "history").returncode == 0  # what would recover now, if anything were left
    report = json.loads(cli(root, "kg", "validate").stdout)
    assert report["ok"] is True, report
    out = json.loads(cli(root, "kg", "query", "--subject", "France", "--relation", "capital").stdout)
    assert [f["object"]["label"] for f in out["facts"]] == ["Marseille"]
    rows = json.loads(cli(root, "history").stdout)
    assert [r["status"] for r in rows] == ["failed"]


# -- D13: tokens expire and rotate; nobody locks the workspace's owner out -----------------------------
def test_d13_tokens_expire_and_can_be_rotated(server):
    from controller.users import UserStore

    users = server.system.users
    _, token = users.add("temp", "viewer")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        me = c.get("/api/me", headers=h(token)).json()
        assert me["token_expires"] > me["created"]  # issued with an expiry (policy.token_days)
        # rotate before it expires: the new one works, the old one stops at once
        new = c.post("/api/me/token", headers=h(token)).json()["token"]
        assert c.get("/api/me", headers=h(token)).status_code == 401
        assert c.get("/api/me", headers=h(new)).status_code == 200
        # past its expiry: 401 that says so
        with users._lock:
            users._db.execute("UPDATE users SET token_expires = '2000-01-01T00:00:00+00:00' WHERE name = 'temp'")
        r = c.get("/api/me", headers=h(new))
        assert r.status_code == 401 and "expired" in r.json()["message"]
    # a store opened on an older ledger (no expiry column) gives every token an expiry from now
    assert UserStore(server.system.ws.root / "ledger.sqlite").token_expires("vic") is not None


def test_d13_an_admin_cannot_lock_out_themselves_or_the_workspace_owner(server):
    users = server.system.users
    owner = server.system.ws.config.user
    _, boss = users.add("boss", "admin")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.patch(f"/api/users/{owner}", json={"active": False}, headers=h(boss))
        assert r.status_code == 400 and "own user" in r.json()["message"]
        r = c.patch(f"/api/users/{owner}", json={"role": "viewer"}, headers=h(boss))
        assert r.status_code == 400
        r = c.patch("/api/users/boss", json={"active": False}, headers=h(boss))
        assert r.status_code == 409 and "yourself" in r.json()["message"]
        assert c.get("/api/users", headers=h(boss)).status_code == 200
    assert users.get(owner).active and users.get(owner).role == "admin"
    # the CLI (acting as the owner) still manages users
    assert _cli("users", "list", "--workspace", server.system.ws.root, "--json").exit_code == 0


# -- one writer: a commit checks the head it was planned against ------------------------------------
def test_a_commit_planned_against_an_older_head_writes_nothing(base_ws, tmp_path):
    from oneedit.core import OneEditError, RevisionError
    from oneedit.system import OneEdit

    root = tmp_path / "ws"
    shutil.copytree(base_ws, root)
    with OneEdit.open(root, load_model=False) as oe:
        plan = oe.plan(oe.intake.edit_intents("The capital of Spain is Seville"))
        oe.kg.add_fact("spain", "official_language", "english", author="someone-else")  # another writer
        with pytest.raises(RevisionError, match="changed since this edit was planned"):
            oe.kg.store.commit(plan.diff, "me", "stale", expect_head=plan.base_revision)
        assert oe.kg.store.objects("spain", "capital") == ["madrid"]

        # through the facade: the user confirms while another writer changes the KG
        def confirm(plan):
            oe.kg.add_fact("spain", "official_language", "french", author="someone-else")
            return True

        head = oe.kg.store.head()
        with pytest.raises(OneEditError, match="changed since this edit was planned") as exc:
            oe.submit("The capital of Spain is Seville", confirm=confirm)
        [edit_id] = exc.value.details["edits"]
        assert oe.ledger.get(edit_id).status == "failed"
        assert oe.kg.store.objects("spain", "capital") == ["madrid"]
        assert oe.kg.store.head() == head + 1  # only the other writer's revision
