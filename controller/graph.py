"""networkx views of the KG, built from the store on demand (never a second source of truth):
neighbourhoods for display, paths for multi-hop explanations."""

from __future__ import annotations

import networkx as nx

from controller.stores.base import KGStore


def neighbourhood(store: KGStore, entity_id: str, *, depth: int = 1, max_nodes: int = 500) -> nx.MultiDiGraph:
    """Entities within ``depth`` hops of ``entity_id`` (following facts either way), with labels."""
    g = nx.MultiDiGraph()
    g.add_node(entity_id)
    seen, frontier = {entity_id}, {entity_id}
    for _ in range(depth):
        nxt: set[str] = set()
        for node in sorted(frontier):
            edges = [t for t in store.triples(node, None, None) if not t.is_meta]
            edges += list(store.triples(None, None, node))
            for t in edges:
                if g.number_of_nodes() >= max_nodes and (t.subject not in g or t.object not in g):
                    continue
                g.add_edge(t.subject, t.object, key=t.relation, relation=t.relation)
                for n in (t.subject, t.object):
                    if n not in seen:
                        seen.add(n)
                        nxt.add(n)
        frontier = nxt
    for n in g.nodes:
        e = store.entity(n)
        g.nodes[n]["label"] = e.label if e else n
        g.nodes[n]["type"] = e.type if e else ""
    return g


def paths(store: KGStore, source: str, target: str, *, max_hops: int = 3, limit: int = 10) -> list[list[tuple[str, str, str]]]:
    """Up to ``limit`` shortest-first relation paths from ``source`` to ``target``."""
    g = nx.MultiDiGraph()
    frontier = {source}
    for _ in range(max_hops):
        nxt = set()
        for node in frontier:
            for t in store.triples(node, None, None):
                if t.is_meta:
                    continue
                if not g.has_edge(t.subject, t.object, key=t.relation):
                    g.add_edge(t.subject, t.object, key=t.relation)
                    nxt.add(t.object)
        frontier = nxt
    if source not in g or target not in g:
        return []
    out = []
    for node_path in nx.all_simple_paths(g, source, target, cutoff=max_hops):
        hops = []
        for a, b in zip(node_path, node_path[1:]):
            rel = sorted(g[a][b])[0]
            hops.append((a, rel, b))
        out.append(hops)
    out.sort(key=len)
    return out[:limit]
