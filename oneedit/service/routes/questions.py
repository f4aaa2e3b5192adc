"""Asking: the KG's answer and the model's, side by side."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from oneedit.core import RateLimitError
from oneedit.service.api import ApiError, Svc, on_worker
from oneedit.service.auth import Viewer
from oneedit.service.schemas import TextIn

router = APIRouter(tags=["questions"])


@router.post("/api/ask")
async def ask(body: TextIn, user: Viewer, svc: Svc):
    """The KG's answer and the model's, side by side, for each question in the text (at
    most ``service.max_questions``; each user ``service.questions_per_minute``). Each question
    is its own turn on the model's worker, so edits queued meanwhile are not held up."""
    system = svc.system
    focus = (body.focus.subject, body.focus.relation) if body.focus else None
    queries = await run_in_threadpool(system.qa.parse, body.text, focus)
    most = system.ws.config.service.max_questions
    if len(queries) > most:
        raise ApiError(422, f"{len(queries)} questions in one request; at most {most} are answered at once.",
                       hint="Split them over several requests.")
    wait = svc.questions.take(user.name, len(queries))
    if wait:
        raise RateLimitError(f"{user.name} asked more than {svc.questions.limit} questions in a minute.",
                             hint=f"Ask again in {wait:.0f} s.")
    answers = [await on_worker(svc, lambda s, q=q: s.qa.answer(q)) for q in queries]
    return {"question": body.text, "answers": answers}
