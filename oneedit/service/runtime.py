"""The :class:`Service`: the facade, its worker, the event hub and the question window, shared by
every route (``request.app.state.service``; routes take it as :data:`oneedit.service.api.Svc`)."""

from __future__ import annotations

from oneedit.service.limits import RateWindow
from oneedit.service.worker import EventHub, Worker


class Service:
    """The facade, its worker and the event hub, shared by the routes."""

    def __init__(self, system, *, window: float | None = None, max_batch: int | None = None,
                 probe: bool | None = None):
        cfg = system.ws.config.service
        self.system = system
        self.hub = EventHub()
        self.worker = Worker(system, window=cfg.batch_window if window is None else window,
                             max_batch=cfg.max_batch if max_batch is None else max_batch,
                             probe=cfg.probe if probe is None else probe, hub=self.hub)
        self.resumed: list[int] = []
        self.model_state = "none"
        self.questions = RateWindow(cfg.questions_per_minute, 60.0)

    def start(self) -> None:
        _ = self.system.interpreter  # built once, before requests share it
        self.system.safety.warm()    # the classifier and the lexicon load in seconds: not on the first edit
        def warmup(system):  # on the worker's thread, before any queued edit
            _ = system.model
            self.model_state = "ready"

        has_model = self.system.has_model()
        if has_model:
            self.model_state = "loading"
        self.resumed = self.worker.start(warmup=warmup if has_model else None)

    def stop(self) -> None:
        self.worker.stop()
