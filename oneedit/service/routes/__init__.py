"""The API's routers, one per area; :func:`oneedit.service.app.create_app` includes them in
:data:`ROUTERS`' order (which keeps the OpenAPI tags, so the sections of ``/docs``, in the order
they have always had: service, users, edits, questions, review, kg)."""

from __future__ import annotations

from oneedit.service.routes import edits, kg, questions, review, status, users

ROUTERS = (status.router, users.router, edits.router, questions.router, review.router, kg.router)

__all__ = ["ROUTERS", "edits", "kg", "questions", "review", "status", "users"]
