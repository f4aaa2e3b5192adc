"""The conformance suite every KG store runs (one abstract class, one subclass per backend)."""

from __future__ import annotations

import pytest

from controller.stores.base import KGStore
from oneedit.core import Diff, Entity, RevisionError, Triple

PARIS = Entity("paris", "City", "Paris", ("City of Light",))
LYON = Entity("lyon", "City", "Lyon")
FRANCE = Entity("france", "Country", "France", ("French Republic",))
SAO = Entity("sao_paulo", "City", "São Paulo")
TRICKY = Entity("tricky", "Person", 'Robert "Bobby" \'); DROP TABLE x; -- {}` \\n née \u05d0\U0001f600',
               ("MATCH (n) DETACH DELETE n",))


def _seed(store: KGStore) -> int:
    with store.transaction("alice", "seed") as txn:
        for e in (PARIS, LYON, FRANCE, SAO):
            txn.add_all(e.triples())
        txn.add(Triple("france", "capital", "paris"))
        txn.add(Triple("paris", "capital_of", "france"))
        txn.add(Triple("paris", "located_in", "france"))
        txn.add(Triple("lyon", "located_in", "france"))
    return txn.revision.id


class StoreConformance:
    """Subclasses provide ``make_store(path)`` returning a fresh, empty store (and reopen it)."""

    def make_store(self, path) -> KGStore:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture
    def st(self, tmp_path):
        s = self.make_store(tmp_path / "store")
        yield s
        s.close()

    # -- transactions and patterns ---------------------------------------------------------
    def test_transaction_commits_one_revision(self, st):
        rev = _seed(st)
        assert rev == 1 and st.head() == 1
        r = st.revision(1, with_diff=True)
        assert r.author == "alice" and r.message == "seed"
        assert r.n_added == len(r.diff.added) == 10 + 4  # entity triples + facts
        assert r.n_removed == 0

    def test_patterns_with_any_slot_unbound(self, st):
        _seed(st)
        assert {t.object for t in st.triples("france", "capital", None)} == {"paris"}
        assert {t.subject for t in st.triples(None, "located_in", "france")} == {"paris", "lyon"}
        assert {t.relation for t in st.triples("paris", None, "france")} == {"capital_of", "located_in"}
        assert {t.relation for t in st.triples("france", None, None)} == {"type", "label", "alias", "capital"}
        assert {t.subject for t in st.triples(None, None, "france")} == {"paris", "lyon"}
        assert len(list(st.triples())) == st.count() == 14
        assert st.count(None, "located_in", None) == 2
        assert st.contains(Triple("lyon", "located_in", "france"))
        assert not st.contains(Triple("lyon", "capital_of", "france"))

    def test_failed_transaction_changes_nothing(self, st):
        _seed(st)
        with pytest.raises(RuntimeError):
            with st.transaction("bob", "half") as txn:
                txn.add(Triple("lyon", "capital_of", "france"))
                raise RuntimeError("boom")
        assert not st.contains(Triple("lyon", "capital_of", "france"))
        assert st.head() == 1

    def test_add_then_remove_in_one_transaction_cancels(self, st):
        _seed(st)
        with st.transaction("bob", "noop") as txn:
            txn.add(Triple("lyon", "capital_of", "france"))
            txn.remove(Triple("lyon", "capital_of", "france"))
        assert txn.revision is None and st.head() == 1

    def test_exact_diff_ignores_present_adds_and_absent_removes(self, st):
        _seed(st)
        with st.transaction("bob", "mixed") as txn:
            txn.add(Triple("france", "capital", "paris"))  # already there
            txn.remove(Triple("france", "capital", "lyon"))  # not there
            txn.add(Triple("lyon", "capital_of", "france"))
        r = st.revision(txn.revision.id, with_diff=True)
        assert r.diff == Diff((Triple("lyon", "capital_of", "france"),), ())

    def test_literals_round_trip_intact(self, st):
        with st.transaction("t", "tricky") as txn:
            txn.add_all(TRICKY.triples())
        assert st.entity("tricky") == TRICKY

    def test_unsafe_names_and_ids_are_refused_before_anything_is_written(self, st):
        from oneedit.core import InputError

        head = st.head()
        for bad in (Triple("x", "label", "two\nlines"), Triple("x", "label", "nul\x00"),
                    Triple("x", "label", "rtl\u202eevil"), Triple("../x", "type", "City"),
                    Triple("x", "capital", "Not An Id")):
            with pytest.raises(InputError):
                with st.transaction("t", "bad") as txn:
                    txn.add(bad)
        assert st.head() == head and st.entity("x") is None

    # -- entities and lookup ---------------------------------------------------------------
    def test_entity_view(self, st):
        _seed(st)
        assert st.entity("paris") == PARIS
        assert st.entity("nowhere") is None
        assert [e.id for e in st.entities("City")] == ["lyon", "paris", "sao_paulo"]

    def test_lookup_by_id_label_alias_case_insensitive(self, st):
        _seed(st)
        assert st.find_entities("paris")[0].how == "id"
        m = st.find_entities("PARIS", fuzzy=False)
        assert [(x.entity.id, x.how, x.score) for x in m] == [("paris", "label", 1.0)]
        m = st.find_entities("city of light", fuzzy=False)
        assert m[0].entity.id == "paris" and m[0].how == "alias" and m[0].score < 1.0
        assert st.find_entities("Sao Paulo", fuzzy=False)[0].entity.id == "sao_paulo"

    def test_fuzzy_lookup_scores_typos_below_exact(self, st):
        _seed(st)
        m = st.find_entities("Frnace")
        assert m[0].entity.id == "france" and m[0].how == "fuzzy"
        assert 0.6 <= m[0].score < 0.97
        assert st.find_entities("zzzzqqq") == []
        assert st.find_entities("Paris", type="Country", fuzzy=False) == []

    def test_lookup_index_follows_commits(self, st):
        _seed(st)
        assert st.find_entities("Lugdunum", fuzzy=False) == []
        with st.transaction("t", "alias") as txn:
            txn.add(Triple("lyon", "alias", "Lugdunum"))
        assert st.find_entities("lugdunum", fuzzy=False)[0].entity.id == "lyon"
        with st.transaction("t", "drop") as txn:
            txn.remove_all(LYON.triples() + [Triple("lyon", "alias", "Lugdunum")])
        assert st.find_entities("Lyon", fuzzy=False) == []

    # -- revisions -------------------------------------------------------------------------
    def test_revert_undoes_one_revision_as_a_new_one(self, st):
        _seed(st)
        with st.transaction("bob", "move capital") as txn:
            txn.remove(Triple("france", "capital", "paris"))
            txn.add(Triple("france", "capital", "lyon"))
        moved = txn.revision.id
        new = st.revert(moved, "carol")
        assert new.id == moved + 1 and new.author == "carol"
        assert st.objects("france", "capital") == ["paris"]
        assert st.revision(moved).state == "committed"  # history is kept

    def test_revert_skips_changes_already_undone(self, st):
        _seed(st)
        with st.transaction("b", "add") as txn:
            txn.add(Triple("lyon", "capital_of", "france"))
        r2 = txn.revision.id
        with st.transaction("b", "remove") as txn:
            txn.remove(Triple("lyon", "capital_of", "france"))
        diff, skipped = st.plan_revert(r2)
        assert not diff and skipped == [Triple("lyon", "capital_of", "france")]

    def test_restore_returns_to_any_revision(self, st):
        _seed(st)
        snapshot = set(st.triples())
        for i in range(3):
            with st.transaction("b", f"step {i}") as txn:
                txn.add(Triple("lyon", "alias", f"L{i}"))
                if i == 1:
                    txn.remove(Triple("france", "capital", "paris"))
        st.restore(1, "carol")
        assert set(st.triples()) == snapshot
        st.restore(0, "carol")
        assert st.count() == 0
        st.restore(3, "carol")  # r3 = after "step 1"
        assert st.objects("lyon", "alias") == ["L0", "L1"] and not st.objects("france", "capital")
        with pytest.raises(RevisionError):
            st.restore(99, "carol")

    def test_unknown_revision_is_a_clear_error(self, st):
        with pytest.raises(RevisionError, match="r7"):
            st.revert(7, "x")

    def test_history_survives_reopen(self, tmp_path):
        s = self.make_store(tmp_path / "p")
        _seed(s)
        with s.transaction("bob", "second") as txn:
            txn.add(Triple("lyon", "alias", "Lugdunum"))
        before = set(s.triples())
        s.close()
        s2 = self.make_store(tmp_path / "p")
        try:
            assert set(s2.triples()) == before
            assert [r.message for r in s2.history()] == ["second", "seed"]
            s2.revert(2, "x")
            assert not s2.contains(Triple("lyon", "alias", "Lugdunum"))
        finally:
            s2.close()

    def test_interrupted_commit_is_rolled_back_on_open(self, tmp_path):
        s = self.make_store(tmp_path / "c")
        _seed(s)
        before = set(s.triples())
        # Simulate a crash: the journal entry is written and half the diff applied, then nothing.
        diff = Diff((Triple("lyon", "capital_of", "france"), Triple("lyon", "alias", "X")),
                    (Triple("france", "capital", "paris"),))
        rev = s.log.begin("crash", "half-applied", [("+", t) for t in diff.added] + [("-", t) for t in diff.removed])
        s._apply(Diff(diff.added[:1], diff.removed))
        s.close()
        s2 = self.make_store(tmp_path / "c")
        try:
            assert set(s2.triples()) == before
            assert s2.revision(rev).state == "aborted"
            assert s2.head() == 1
        finally:
            s2.close()

    def test_bulk_load_is_one_revertible_revision(self, st):
        triples = [t for i in range(500) for t in Entity(f"c{i}", "City", f"City {i}").triples()]
        rev = st.bulk_load(triples, "loader", "bulk")
        assert rev.n_added == 1000 and st.count() == 1000
        st.revert(rev.id, "loader")
        assert st.count() == 0


class TestEmbeddedStore(StoreConformance):
    def make_store(self, path):
        from controller.stores.embedded import EmbeddedStore

        return EmbeddedStore(path)

    def test_second_process_gets_a_clear_lock_error(self, st):
        import subprocess
        import sys

        code = ("from controller.stores.embedded import EmbeddedStore\n"
                "from oneedit.core import WorkspaceError\n"
                f"try:\n    EmbeddedStore({str(st.path)!r})\nexcept WorkspaceError as e:\n    print('LOCKED', e.message)\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert "LOCKED" in out.stdout and "another OneEdit process" in out.stdout

    def test_rdflib_view_answers_sparql(self, st):
        _seed(st)
        rows = list(st.graph.query(
            "SELECT ?c WHERE { ?c <urn:oneedit:r:located_in> <urn:oneedit:e:france> }"))
        assert sorted(str(r[0]).rsplit(":", 1)[1] for r in rows) == ["lyon", "paris"]


class TestNeo4jStore(StoreConformance):
    """The same suite on a real Bolt server: FalkorDB on loopback, or Neo4j at $ONEEDIT_NEO4J_URI."""

    @pytest.fixture(autouse=True)
    def _server(self, bolt):
        self.server = bolt
        self.opened: set[str] = set()

    def make_store(self, path):
        from controller.stores.neo4j import Neo4jStore

        store = Neo4jStore(**self.server.options())
        if str(path) not in self.opened:  # a new "path" starts empty; the same one reopens the graph
            store.wipe()
        self.opened.add(str(path))
        return store

    def test_hostile_labels_round_trip_and_stay_parameters(self, st):
        nasty = ['a"b', "it's", "{x: 1}", "`tick`", "MATCH (n) DETACH DELETE n", "}) RETURN 1 //", "$param",
                 "\\u0000 back\\slash", "line\\nbreak", "ünïcødé 東京"]
        with st.transaction("t", "nasty") as txn:
            for i, label in enumerate(nasty):
                # names are one line (control characters are refused); a description may run over lines
                txn.add_all(Entity(f"n{i}", "City", label, (label + " alias",), description=label + "\nmore").triples())
            txn.add(Triple("n0", "located_in", "n1"))
        for i, label in enumerate(nasty):
            e = st.entity(f"n{i}")
            assert e is not None and e.label == label and e.aliases == (label + " alias",)
            assert e.description == label + "\nmore"
        assert st.find_entities("MATCH (n) DETACH DELETE n")[0].entity.id == "n4"
        assert st.count() == len(nasty) * 4 + 1  # nothing was executed as Cypher

    def test_names_that_cannot_be_relationship_types_are_refused(self, st):
        from oneedit.core import InputError

        with pytest.raises(InputError, match="not a valid relation id"):
            st.commit(Diff((Triple("a", "capital`]->(x) DETACH DELETE x //", "b"),), ()), "t", "bad")
        assert st.head() == 0 and st.count() == 0

    def test_a_hung_server_is_a_timeout_not_a_hang(self, bolt, tmp_path):
        import socket
        import threading
        import time

        from controller.stores.neo4j import Neo4jStore
        from oneedit.core import StoreError

        # a Bolt port that accepts connections and never answers
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        held = []
        threading.Thread(target=lambda: [held.append(srv.accept()) for _ in range(4)], daemon=True).start()
        uri = f"bolt://127.0.0.1:{srv.getsockname()[1]}"
        try:
            t0 = time.monotonic()
            with pytest.raises(StoreError) as info:
                Neo4jStore(uri, user="x", password="y", timeout=2.0)
            elapsed = time.monotonic() - t0
        finally:
            srv.close()
            for conn, _ in list(held):
                conn.close()
        # whichever way it is reported, it comes within a bound of the 2 s timeout...
        assert elapsed < 20, f"a hung server took {elapsed:.1f} s to report"
        # ...as our timeout ("did not answer within"), or as the driver's own connection timeout
        # firing first (a driver error, reported as "failed while ..."); either names the server
        message = info.value.message
        assert uri in message, message
        assert "did not answer within" in message or "failed while" in message, message


def test_embedded_rdf_bulk_load_is_revertible_and_checks_namespace(tmp_path):
    import pyoxigraph as ox

    from controller.io import write_triples
    from controller.stores.embedded import EmbeddedStore
    from oneedit.core import StoreError

    triples = [t for i in range(300) for t in Entity(f"c{i}", "City", f"City {i}").triples()]
    triples.append(Triple("c1", "located_in", "c2"))
    nt = tmp_path / "w.nt"
    write_triples(triples, nt, "nt")
    s = EmbeddedStore(tmp_path / "s")
    try:
        rev = s.load_rdf_file(nt, ox.RdfFormat.N_TRIPLES, "loader", "bulk")
        assert rev.n_added == 601 and set(s.triples()) == set(triples)
        assert set(s.revision(rev.id, with_diff=True).diff.added) == set(triples)
        s.revert(rev.id, "x")
        assert s.count() == 0
        s.restore(1, "x")
        assert set(s.triples()) == set(triples)
        with pytest.raises(StoreError, match="empty store"):
            s.load_rdf_file(nt, ox.RdfFormat.N_TRIPLES, "loader", "again")
    finally:
        s.close()
    foreign = tmp_path / "f.nt"
    foreign.write_text("<urn:oneedit:e:a> <http://example.org/p> <urn:oneedit:e:b> .\n")
    s = EmbeddedStore(tmp_path / "s2")
    try:
        with pytest.raises(StoreError, match="line 1: statement is outside the OneEdit namespace"):
            s.load_rdf_file(foreign, ox.RdfFormat.N_TRIPLES, "loader", "bulk")
        assert s.count() == 0 and s.head() == 0
    finally:
        s.close()
