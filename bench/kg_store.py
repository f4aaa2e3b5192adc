"""KG store benchmark: load, resident memory, (s, p, ?) lookup latency, a 1,000-add transaction and
its revert, for synthetic worlds of 10k, 100k and 1M triples.

Each size runs in a fresh subprocess so resident-memory numbers are not polluted by the previous
run. The baseline is rdflib's in-memory ``Graph`` (the other option the design allowed), measured
in the same subprocess on the same file.

    python bench/kg_store.py                 # 10k, 100k, 1M with the rdflib baseline
    python bench/kg_store.py --sizes 10000 --no-baseline --json
    python bench/kg_store.py --sizes 10000 100000 --no-baseline --falkordb     # + the neo4j store
    ONEEDIT_NEO4J_PASSWORD=… python bench/kg_store.py --neo4j-uri bolt://db:7687 --neo4j-user neo4j

With ``--falkordb`` (a FalkorDB Bolt server started on loopback, as the tests do) or
``--neo4j-uri`` the same world is also loaded into the neo4j store (batched UNWIND statements)
and measured the same way: load, (s, p, ?) lookups over the Bolt connection, a 1,000-fact
transaction and its revert. The target database is emptied first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def make_world(size: int, workdir: Path, seed: int = 0) -> None:
    """Write the synthetic world and the lookup probes (run in its own process, so the
    measuring process starts with a clean heap)."""
    import kg_data
    from controller.io import write_triples
    from controller.schema import Schema
    from controller.synth import synth_world

    schema = Schema.load(kg_data.schema_path())
    triples = synth_world(schema, size, seed=seed)
    write_triples(triples, workdir / f"synth_{size}.nt", "nt")
    rng = random.Random(seed)
    facts = [t for t in triples if not t.is_meta]
    probes = [(t.subject, t.relation) for t in rng.sample(facts, min(2000, len(facts)))]
    (workdir / f"probes_{size}.json").write_text(json.dumps({"n": len(triples), "probes": probes}))


def lookups_and_transaction(store, probes: list, lookups: int | None = None) -> dict:
    """(s, p, ?) lookup latency over the probes, then a 1,000-fact transaction and its revert."""
    from oneedit.core import Triple

    lat = []
    for s, p in probes[:lookups]:
        t = time.perf_counter()
        res = list(store.triples(s, p, None))
        lat.append(time.perf_counter() - t)
        assert res
    out = {"lookup_p50_us": _pct(lat, 0.5) * 1e6, "lookup_p99_us": _pct(lat, 0.99) * 1e6}
    adds = [Triple(s, "alias", f"bench alias {i}") for i, (s, _p) in enumerate(probes[:1000])]
    t = time.perf_counter()
    with store.transaction("bench", "1000 adds") as txn:
        txn.add_all(adds)
    out["txn_1000_adds_ms"] = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    store.revert(txn.revision.id, "bench")
    out["revert_1000_ms"] = (time.perf_counter() - t) * 1e3
    return out


def run_one(size: int, workdir: Path, baseline: bool) -> dict:
    import pyoxigraph as ox

    from controller.stores.embedded import EmbeddedStore

    nt = workdir / f"synth_{size}.nt"
    meta = json.loads((workdir / f"probes_{size}.json").read_text())
    n, probes = meta["n"], [tuple(p) for p in meta["probes"]]

    out: dict = {"size": n}
    rss0 = _rss_mb()
    store = EmbeddedStore(workdir / f"store_{size}")
    t0 = time.perf_counter()
    rev = store.load_rdf_file(nt, ox.RdfFormat.N_TRIPLES, "bench", "load")
    out["load_s"] = time.perf_counter() - t0
    out["rss_mb"] = _rss_mb() - rss0
    out["rss_total_mb"] = _rss_mb()
    assert rev.n_added == store.count() == n, (rev.n_added, n)

    out |= lookups_and_transaction(store, probes)
    assert store.count() == n
    store.close()
    disk = sum(f.stat().st_size for f in (workdir / f"store_{size}").rglob("*") if f.is_file())
    out["disk_mb"] = disk / 2**20

    graph = json.loads(os.environ.get("ONEEDIT_BENCH_GRAPH", "null"))
    if graph:
        src = EmbeddedStore(workdir / f"store_{size}")
        triples = list(src.triples())
        src.close()
        out |= {"graph_" + k: v for k, v in run_graph(graph, triples, probes).items()}

    if baseline:
        from rdflib import Graph, URIRef

        rss1 = _rss_mb()
        g = Graph()
        t = time.perf_counter()
        g.parse(nt, format="nt")
        out["rdflib_mem_load_s"] = time.perf_counter() - t
        out["rdflib_mem_rss_mb"] = _rss_mb() - rss1
        lat = []
        for s, p in probes:
            su, pu = URIRef("urn:oneedit:e:" + s), URIRef("urn:oneedit:r:" + p)
            t = time.perf_counter()
            list(g.triples((su, pu, None)))
            lat.append(time.perf_counter() - t)
        out["rdflib_mem_lookup_p99_us"] = _pct(lat, 0.99) * 1e6
    return out


def run_graph(options: dict, triples: list, probes: list) -> dict:
    """The neo4j store on the same world: load, lookups, a 1,000-fact transaction and its revert."""
    from controller.stores.neo4j import Neo4jStore

    out: dict = {}
    store = Neo4jStore(**options)
    store.wipe()
    t0 = time.perf_counter()
    rev = store.bulk_load(triples, "bench", "load")
    out["load_s"] = time.perf_counter() - t0
    assert rev.n_added == len(triples), (rev.n_added, len(triples))
    out |= lookups_and_transaction(store, probes, lookups=300)
    out["statement_budget_bytes"] = store.db.param_budget
    store.wipe()
    store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--no-baseline", action="store_true", help="skip rdflib's in-memory Graph")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--falkordb", action="store_true", help="also measure the neo4j store on a local FalkorDB")
    ap.add_argument("--neo4j-uri", help="also measure the neo4j store on this server (its database is emptied)")
    ap.add_argument("--neo4j-user", default="neo4j")
    ap.add_argument("--neo4j-password-env", default="ONEEDIT_NEO4J_PASSWORD")
    ap.add_argument("--_child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_dir", help=argparse.SUPPRESS)
    ap.add_argument("--_make", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._make:
        make_world(args._make, Path(args._dir))
        return
    if args._child:
        print(json.dumps(run_one(args._child, Path(args._dir), not args.no_baseline)))
        return

    rows = []
    server = None
    if args.falkordb:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.bolt_support import start_falkordb

        server = start_falkordb(Path(tempfile.mkdtemp(prefix="oneedit-falkordb-")))
        os.environ["ONEEDIT_BENCH_GRAPH"] = json.dumps(server.options() | {"timeout": 120.0})
    elif args.neo4j_uri:
        os.environ["ONEEDIT_BENCH_GRAPH"] = json.dumps({"uri": args.neo4j_uri, "user": args.neo4j_user,
                                                        "password_env": args.neo4j_password_env, "timeout": 120.0})
    try:
        rows = _run_sizes(args)
    finally:
        if server is not None:
            from tests.bolt_support import stop

            stop(server)
    _report(rows, args)


def _run_sizes(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            subprocess.run([sys.executable, __file__, "--_make", str(size), "--_dir", tmp], check=True)
            cmd = [sys.executable, __file__, "--_child", str(size), "--_dir", tmp]
            if args.no_baseline:
                cmd.append("--no-baseline")
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                raise SystemExit(f"the {size:,}-triple run failed:\n{res.stderr[-3000:]}")
            rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
            if not args.json:
                print(f"done {size:,}", file=sys.stderr)
    return rows


def _report(rows: list[dict], args) -> None:
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    (Path(__file__).parent / "out").mkdir(exist_ok=True)
    (Path(__file__).parent / "out" / "kg_store.json").write_text(json.dumps(rows, indent=2))
    from rich.console import Console
    from rich.table import Table

    t = Table(title="Embedded KG store (rdflib API over on-disk Oxigraph)", title_justify="left")
    cols = [("triples", "size", "{:,}"), ("load s", "load_s", "{:.2f}"), ("RSS MB", "rss_mb", "{:.0f}"),
            ("process RSS MB", "rss_total_mb", "{:.0f}"), ("disk MB", "disk_mb", "{:.0f}"), ("lookup p50 µs", "lookup_p50_us", "{:.1f}"),
            ("lookup p99 µs", "lookup_p99_us", "{:.1f}"), ("1k-add txn ms", "txn_1000_adds_ms", "{:.0f}"),
            ("revert ms", "revert_1000_ms", "{:.0f}")]
    if not args.no_baseline:
        cols += [("rdflib-mem load s", "rdflib_mem_load_s", "{:.2f}"),
                 ("rdflib-mem RSS MB", "rdflib_mem_rss_mb", "{:.0f}"),
                 ("rdflib-mem p99 µs", "rdflib_mem_lookup_p99_us", "{:.1f}")]
    for name, _k, _f in cols:
        t.add_column(name, justify="right")
    for r in rows:
        t.add_row(*[f.format(r[k]) for _n, k, f in cols])
    Console(width=200).print(t)
    print("goals at 1M: load <= 15 s, lookup p99 <= 1000 µs, resident <= 800 MB")
    if any("graph_load_s" in r for r in rows):
        g = Table(title="neo4j store over Bolt (same worlds)", title_justify="left")
        gcols = [("triples", "size", "{:,}"), ("load s", "graph_load_s", "{:.1f}"),
                 ("lookup p50 µs", "graph_lookup_p50_us", "{:.0f}"), ("lookup p99 µs", "graph_lookup_p99_us", "{:.0f}"),
                 ("1k-add txn ms", "graph_txn_1000_adds_ms", "{:.0f}"), ("revert ms", "graph_revert_1000_ms", "{:.0f}")]
        for name, _k, _f in gcols:
            g.add_column(name, justify="right")
        for r in rows:
            g.add_row(*[f.format(r[k]) for _n, k, f in gcols])
        Console(width=200).print(g)


if __name__ == "__main__":
    main()
