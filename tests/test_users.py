"""Users, roles, tokens, trust, rate limits and protected facts on real SQLite files, and the
``oneedit users`` commands on a real workspace."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading

import pytest
from typer.testing import CliRunner

from controller.users import (
    ROLES,
    ProtectedFacts,
    RateLimit,
    TrustPolicy,
    UserStore,
    can_admin,
    can_edit,
    can_review,
    check_role,
    require_role,
)
from oneedit.cli.users import users_app
from oneedit.core import (
    OneEditError,
    PermissionDenied,
    PolicyError,
    ProtectedFactError,
    RateLimitError,
    Triple,
    UserError,
    UserExistsError,
)
from oneedit.ledger import Ledger
from oneedit.workspace import Workspace
from tests.conftest import write_world


@pytest.fixture
def db(tmp_path):
    return tmp_path / "ledger.sqlite"


@pytest.fixture
def store(db):
    with UserStore(db) as s:
        yield s


# -- roles -----------------------------------------------------------------------------------

def test_role_ranks():
    assert ROLES == ("viewer", "editor", "curator", "admin")
    assert [can_edit(r) for r in ROLES] == [False, True, True, True]
    assert [can_review(r) for r in ROLES] == [False, False, True, True]
    assert [can_admin(r) for r in ROLES] == [False, False, False, True]
    with pytest.raises(UserError) as err:
        check_role("superuser")
    assert "viewer, editor, curator, admin" in err.value.hint


def test_add_validates_name_and_role(store):
    with pytest.raises(UserError) as err:
        store.add("bob", "owner")
    assert "'owner'" in err.value.message and "viewer, editor, curator, admin" in err.value.hint
    for bad in ("", "a b", "x" * 65, "bob;drop", "ünï"):
        with pytest.raises(UserError, match="Invalid user name") as err:
            store.add(bad, "editor")
        assert "1-64" in err.value.hint
    user, _ = store.add("jane.doe-1@example.org", "viewer")
    assert user.name == "jane.doe-1@example.org" and store.list() == [user]


def test_duplicate_user_is_refused(store):
    store.add("bob", "editor")
    with pytest.raises(UserExistsError) as err:
        store.add("bob", "admin")
    assert "already exists" in err.value.message and "oneedit users list" in err.value.hint
    store.add("root", "admin")
    store.deactivate("bob")
    with pytest.raises(UserExistsError, match="deactivated"):
        store.add("bob", "editor")
    assert [u.role for u in store.list()] == ["editor", "admin"]


def test_get_unknown_user_says_how_to_add(store):
    assert store.find("ghost") is None
    with pytest.raises(UserError) as err:
        store.get("ghost")
    assert "No user named 'ghost'" in err.value.message
    assert "oneedit users add ghost --role ROLE" in err.value.hint


def test_user_record(store):
    user, token = store.add("bob", "editor")
    d = user.to_dict()
    assert d["name"] == "bob" and d["role"] == "editor" and d["trust"] == 0.5 and d["active"] is True
    assert d["created"] and set(d) == {"name", "role", "trust", "created", "active"}
    assert store.ensure("bob", "admin") == user  # an existing user is returned unchanged
    assert store.ensure("admin", "admin").role == "admin"


# -- tokens ----------------------------------------------------------------------------------

def test_token_is_stored_only_hashed(db, store):
    _, token = store.add("bob", "editor")
    assert token.startswith("oe_") and len(token) > 40
    store.close()
    raw = b"".join(p.read_bytes() for p in db.parent.glob("ledger.sqlite*"))  # the file and its WAL
    assert token.encode() not in raw and token[3:].encode() not in raw
    digest = hashlib.sha256(token.encode()).hexdigest()
    with sqlite3.connect(db) as con:
        stored = con.execute("SELECT token_hash FROM users WHERE name = 'bob'").fetchone()[0]
        columns = [r[1] for r in con.execute("PRAGMA table_info(users)")]
    assert stored == digest and "token" not in columns


def test_authenticate(store):
    _, bob_token = store.add("bob", "editor")
    _, ann_token = store.add("ann", "admin")
    assert store.authenticate(bob_token).name == "bob"
    assert store.authenticate(ann_token).name == "ann"
    for wrong in ("", "oe_", bob_token[:-1] + ("A" if bob_token[-1] != "A" else "B"), bob_token[3:],
                  "oe_" + "x" * 43, None, 42):
        assert store.authenticate(wrong) is None
    new = store.rotate_token("bob")
    assert new != bob_token and store.authenticate(bob_token) is None
    assert store.authenticate(new).name == "bob"
    store.deactivate("bob")
    assert store.authenticate(new) is None  # inactive users do not authenticate
    with pytest.raises(UserError, match="deactivated"):
        store.rotate_token("bob")


# -- roles in use ----------------------------------------------------------------------------

def test_set_role_and_permission_denied(store):
    store.add("ann", "admin")
    bob, _ = store.add("bob", "viewer")
    with pytest.raises(PermissionDenied) as err:
        require_role(bob, "editor", "edit the KG")
    e = err.value
    assert "need the role editor or curator or admin" in e.message and "'viewer'" in e.message
    assert "oneedit users set-role bob editor" in e.hint and e.exit_code == 77
    bob = store.set_role("bob", "curator")
    assert bob.role == "curator"
    require_role(bob, "editor", "edit the KG")
    with pytest.raises(PermissionDenied, match="need the role admin"):
        require_role(bob, "admin", "manage users")
    with pytest.raises(UserError):
        store.set_role("bob", "boss")
    with pytest.raises(PermissionDenied, match="deactivated"):
        require_role(store.deactivate("bob"), "viewer", "read")


def test_the_last_admin_stays(store):
    store.add("ann", "admin")
    with pytest.raises(UserError) as err:
        store.set_role("ann", "editor")
    assert "only active admin" in err.value.message and "set-role NAME admin" in err.value.hint
    with pytest.raises(UserError, match="only active admin"):
        store.deactivate("ann")
    store.add("root", "admin")
    assert store.deactivate("ann").active is False
    assert store.activate("ann").active is True


# -- trust -----------------------------------------------------------------------------------

def test_trust_moves_and_clamps(store):
    store.add("bob", "editor")
    assert store.adjust_trust("bob", "accepted") == pytest.approx(0.52)
    assert store.adjust_trust("bob", "rejected") == pytest.approx(0.47)
    assert store.adjust_trust("bob", "rolled_back") == pytest.approx(0.37)
    for _ in range(10):
        trust = store.adjust_trust("bob", "rolled_back")
    assert trust == 0.0 and store.get("bob").trust == 0.0
    for _ in range(60):
        trust = store.adjust_trust("bob", "accepted")
    assert trust == 1.0
    with pytest.raises(UserError, match="accepted, rejected, rolled_back"):
        store.adjust_trust("bob", "great")
    with pytest.raises(UserError, match="No user"):
        store.adjust_trust("ghost", "accepted")


def test_needs_review_below_the_threshold(db):
    with UserStore(db, TrustPolicy(initial=0.32)) as store:
        bob, _ = store.add("bob", "editor")
        cur, _ = store.add("cur", "curator")
        assert bob.trust == 0.32 and not store.needs_review(bob)
        store.adjust_trust("bob", "rejected")
        store.adjust_trust("cur", "rolled_back")
        assert store.needs_review(store.get("bob"))  # 0.27 < 0.3
        assert not store.needs_review(store.get("cur"))  # curators and admins are never held


def test_policies_from_dict():
    p = TrustPolicy.from_dict({"initial": 0.8, "review_below": 0.5})
    assert p.initial == 0.8 and p.accepted == 0.02
    with pytest.raises(PolicyError) as err:
        TrustPolicy.from_dict({"initial": 0.8, "bonus": 1})
    assert "bonus" in err.value.message and "review_below" in err.value.hint
    assert isinstance(err.value, OneEditError)
    with pytest.raises(PolicyError, match="minimum <= initial <= maximum"):
        TrustPolicy.from_dict({"initial": 2.0})
    with pytest.raises(PolicyError, match="number"):
        TrustPolicy.from_dict({"initial": "high"})
    r = RateLimit.from_dict({"editor": 5})
    assert r.limit("editor") == 5 and r.limit("viewer") == 0 and RateLimit().limit("editor") == 30
    with pytest.raises(PolicyError, match="robot"):
        RateLimit.from_dict({"robot": 5})
    with pytest.raises(PolicyError, match="whole number"):
        RateLimit.from_dict({"editor": -1})


# -- rate limits -----------------------------------------------------------------------------

def test_rate_limit(store):
    limits = RateLimit()
    store.check_rate("bob", "editor", 29, limits)
    with pytest.raises(RateLimitError) as err:
        store.check_rate("bob", "editor", 30, limits)
    e = err.value
    assert "30 edits in the last minute" in e.message and "allows 30 per minute" in e.message
    assert "Wait a minute" in e.hint and "30 edits per minute" in e.hint
    assert e.details == {"user": "bob", "role": "editor", "recent": 30, "limit": 30, "window_s": 60}
    assert e.exit_code == 75
    for role in ("viewer", "curator", "admin"):  # 0 = unlimited
        store.check_rate("ann", role, 10_000, limits)
    with pytest.raises(RateLimitError, match="allows 2 per minute"):
        store.check_rate("cur", "curator", 3, RateLimit.from_dict({"curator": 2}))


# -- protected facts -------------------------------------------------------------------------

def test_protected_facts(db):
    a, b, c = Triple("france", "capital", "paris"), Triple("germany", "capital", "berlin"), \
        Triple("apple", "ceo", "tim_cook")
    with ProtectedFacts(db) as prot:
        assert prot.protect(a, "cur", "stable fact") is True
        assert prot.protect(a, "other") is False  # the first protection's record is kept
        prot.protect(b, "cur")
        assert prot.is_protected(a) and not prot.is_protected(c)
        assert prot.which([a, b, c, a]) == {a, b}
        assert prot.which([]) == set()
        many = [Triple(f"e{i}", "capital", "x") for i in range(1000)]
        assert prot.which([*many, b]) == {b}  # chunked queries
        listed = prot.list()
        assert [(d["subject"], d["by"], d["reason"]) for d in listed] == [("france", "cur", "stable fact"),
                                                                         ("germany", "cur", "")]
        prot.unprotect(a)
        assert not prot.is_protected(a)
        with pytest.raises(ProtectedFactError) as err:
            prot.unprotect(a)
        assert "(france, capital, paris) is not protected" in err.value.message


def test_shares_the_ledger_file(db):
    ledger = Ledger(db)
    edit = ledger.create("bob", "The capital of France is Lyon")
    with UserStore(db) as store, ProtectedFacts(db) as prot:
        store.add("bob", "editor")
        prot.protect(Triple("france", "capital", "paris"), "bob")
    assert ledger.get(edit).author == "bob" and ledger.count() == 1
    ledger.close()
    with sqlite3.connect(db) as con:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"edits", "meta", "users", "protected_facts"} <= tables
    with UserStore(db) as again:  # reopening keeps the users
        assert again.get("bob").role == "editor"


def test_concurrent_writers(db):
    with UserStore(db, TrustPolicy(initial=0.0)) as store:
        store.add("bob", "editor")
        errors: list[Exception] = []

        def work(i: int) -> None:
            try:
                store.add(f"user{i}", "viewer")
                for _ in range(5):
                    store.adjust_trust("bob", "accepted")
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(store.list()) == 9 and store.get("bob").trust == pytest.approx(40 * 0.02)


# -- the CLI ---------------------------------------------------------------------------------

runner = CliRunner()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("users-cli") / "ws"
    w, created = Workspace.init(root, data=write_world(root.parent / "data"))
    w.close()
    assert created
    return root


def cli(ws, *args, ok=True):
    res = runner.invoke(users_app, [*map(str, args), "--workspace", str(ws)])
    if ok:
        assert res.exit_code == 0, res.output
    return res


def test_cli_add_list_role_remove_token(ws):
    res = cli(ws, "add", "carol", "--role", "editor")
    assert "Added carol as editor" in res.output and "shown only once" in res.output
    token = next(w for w in res.output.split() if w.startswith("oe_"))
    with UserStore(ws / "ledger.sqlite") as store:
        assert store.authenticate(token).name == "carol"

    out = json.loads(cli(ws, "add", "dave", "--role", "viewer", "--json").stdout)
    assert out["user"]["role"] == "viewer" and out["token"].startswith("oe_") and "only once" in out["warning"]

    listed = json.loads(cli(ws, "list", "--json").stdout)["users"]
    assert {u["name"]: u["role"] for u in listed} == {"admin": "admin", "carol": "editor", "dave": "viewer"}
    table = cli(ws, "list").output
    for word in ("name", "role", "trust", "active", "created", "carol", "0.50"):
        assert word in table

    out = json.loads(cli(ws, "set-role", "dave", "curator", "--json").stdout)
    assert out == {"user": out["user"], "previous_role": "viewer"} and out["user"]["role"] == "curator"
    assert "dave: curator -> editor" in cli(ws, "set-role", "dave", "editor").output

    new = json.loads(cli(ws, "token", "carol", "--json").stdout)["token"]
    assert "shown only once" in cli(ws, "token", "dave").output
    assert "Deactivated carol" in cli(ws, "remove", "carol").output
    with UserStore(ws / "ledger.sqlite") as store:
        assert store.authenticate(token) is None and store.authenticate(new) is None
        assert store.get("carol").active is False


def test_cli_errors(ws):
    res = cli(ws, "add", "erin", "--role", "boss", ok=False)
    assert res.exit_code == 1 and "Unknown role 'boss'" in res.output and "viewer, editor" in res.output
    cli(ws, "add", "frank", "--role", "editor")
    res = cli(ws, "add", "frank", "--role", "editor", ok=False)
    assert res.exit_code == 1 and "already exists" in res.output and "oneedit users list" in res.output
    err = json.loads(cli(ws, "set-role", "ghost", "editor", "--json", ok=False).stdout)
    assert err["error"] == "UserError" and "oneedit users add ghost --role ROLE" in err["hint"]
    res = cli(ws, "remove", "admin", ok=False)  # the workspace's own user, whom the CLI acts as
    assert res.exit_code == 1 and "workspace's own user" in " ".join(res.output.split())
    res = cli(ws, "add", "bad name", "--role", "editor", ok=False)
    assert res.exit_code == 1 and "Invalid user name" in res.output


def test_cli_needs_an_admin(ws, tmp_path):
    # A copy of the workspace whose local user is an editor may not manage users.
    import shutil

    import yaml

    other = tmp_path / "ws"
    shutil.copytree(ws, other)
    with UserStore(other / "ledger.sqlite") as store:
        store.ensure("hank", "editor")
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["user"] = "hank"
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = cli(other, "add", "gina", "--role", "viewer", ok=False)
    assert res.exit_code == 77 and "need the role admin" in res.output
