"""Health (no token), statistics and the model-against-KG audit."""

from __future__ import annotations

from fastapi import APIRouter, Query

from oneedit.service.api import API_VERSION, ApiError, Svc, on_worker
from oneedit.service.auth import Viewer

router = APIRouter(tags=["service"])


@router.get("/api/health")
def health(svc: Svc):
    """Liveness (no token needed): the worker, the model and the queue."""
    return {"status": "ok" if svc.worker.alive else "stopping", "model": svc.model_state,
            "queued": svc.system.ledger.count("queued"), "version": API_VERSION}


@router.get("/api/stats")
def stats(user: Viewer, svc: Svc):
    """Queue depth, ledger counts per status, and how the worker batched model edits."""
    system = svc.system
    return {"queue_depth": svc.worker.depth(), "ledger": system.ledger.counts(),
            "worker": svc.worker.stats.to_dict(), "batch_window_s": svc.worker.window,
            "max_batch": svc.worker.max_batch, "kg_revision": system.kg.store.head(),
            "model": svc.model_state,
            "consolidation": svc.worker.sleep.state() if svc.worker.sleep else None}


@router.get("/api/audit")
async def audit(user: Viewer, svc: Svc, sample: int | None = Query(None, ge=1, le=100_000), seed: int = 0):
    """The model against the KG: agreement on edited, unedited and all facts (``sample``: a
    seeded sample of facts, with a 95% interval), and where it disagrees."""
    if svc.model_state != "ready":
        raise ApiError(503, "The model is not loaded (yet): nothing to audit.",
                       hint="Retry once GET /api/health says the model is ready.")
    return await on_worker(svc, lambda s: s.sync.audit(sample=sample, seed=seed))
