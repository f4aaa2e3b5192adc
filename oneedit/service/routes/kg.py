"""Browsing the KG: entity search, an entity with its facts, its neighbourhood (for the page's
graph picture) and the schema's relations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from oneedit.core import UnknownEntityError
from oneedit.service.api import ApiError, Svc
from oneedit.service.auth import Viewer

router = APIRouter(tags=["kg"])


def entity_or_404(system, name: str):
    try:
        return system.kg.resolve_entity(name)
    except UnknownEntityError as exc:
        if (exc.details or {}).get("candidates"):
            raise
        raise ApiError(404, exc.message, exc.hint, details=exc.details) from None


def _fact(system, t) -> dict:
    return {"subject": t.subject, "relation": t.relation, "object": t.object,
            "subject_label": system.kg.label(t.subject), "object_label": system.kg.label(t.object)}


@router.get("/api/kg/search")
def kg_search(user: Viewer, svc: Svc, q: Annotated[str, Query(min_length=1, max_length=200)],
              type: str | None = None, limit: Annotated[int, Query(ge=1, le=50)] = 10):
    """Entities by id, label or alias (then fuzzy)."""
    hits = svc.system.kg.store.find_entities(q, limit=limit, type=type)
    return {"query": q, "results": [{"id": m.entity.id, "label": m.entity.label, "type": m.entity.type,
                                     "description": m.entity.description, "score": round(m.score, 3),
                                     "matched": m.matched, "how": m.how} for m in hits]}


@router.get("/api/kg/entities/{name}")
def kg_entity(name: str, user: Viewer, svc: Svc):
    """An entity with its facts (outgoing and incoming) and its derived (multi-hop) facts."""
    system = svc.system
    e = entity_or_404(system, name)
    store = system.kg.store
    out_facts = [_fact(system, t) for t in store.triples(e.id, None, None) if not t.is_meta]
    in_facts = [_fact(system, t) for t in store.triples(None, None, e.id) if not t.is_meta]
    derived = [_fact(system, d.triple) | {"rule": d.rule, "via": [list(v.as_tuple()) for v in d.via]}
               for d in system.kg.derived(subject=e.id)]
    return {"id": e.id, "label": e.label, "type": e.type, "aliases": list(e.aliases),
            "description": e.description, "facts": out_facts, "incoming": in_facts, "derived": derived}


@router.get("/api/kg/entities/{name}/neighbourhood")
def kg_neighbourhood(name: str, user: Viewer, svc: Svc, depth: Annotated[int, Query(ge=1, le=2)] = 1,
                     limit: Annotated[int, Query(ge=1, le=300)] = 60):
    """Nodes and edges around an entity (for the page's graph picture)."""
    e = entity_or_404(svc.system, name)
    store = svc.system.kg.store
    nodes: dict[str, dict] = {}
    edges: list[dict] = []

    def node(eid: str, hop: int) -> None:
        if eid not in nodes:
            x = store.entity(eid)
            nodes[eid] = {"id": eid, "label": x.label if x else eid, "type": x.type if x else None, "hop": hop}

    node(e.id, 0)
    frontier = [e.id]
    for hop in range(1, depth + 1):
        nxt = []
        for eid in frontier:
            for t in [*store.triples(eid, None, None), *store.triples(None, None, eid)]:
                if t.is_meta or len(edges) >= limit:
                    continue
                if any(x["subject"] == t.subject and x["relation"] == t.relation and x["object"] == t.object
                       for x in edges):
                    continue
                edges.append({"subject": t.subject, "relation": t.relation, "object": t.object})
                for end in (t.subject, t.object):
                    if end not in nodes:
                        node(end, hop)
                        nxt.append(end)
        frontier = nxt
    return {"center": e.id, "nodes": list(nodes.values()), "edges": edges, "truncated": len(edges) >= limit}


@router.get("/api/kg/relations")
def kg_relations(user: Viewer, svc: Svc):
    rels = svc.system.kg.schema.relations.values()
    return {"relations": [{"id": r.id, "label": r.label, "domain": list(r.domain), "range": list(r.range),
                           "functional": r.functional, "composite": r.composite, "inverse": r.inverse}
                          for r in rels]}
