"""Forward hooks used by the editors: read or change activations at chosen rows and positions."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


def _replace(output, hidden):
    if isinstance(output, tuple):
        return (hidden, *output[1:])
    return hidden


@contextmanager
def edit_output(module: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace a module's (first) output by ``fn(output)`` while the context is open."""
    handle = module.register_forward_hook(lambda m, args, out: _replace(out, fn(_hidden(out))))
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def frozen_prefix(blocks: list[nn.Module], output, hidden: torch.Tensor) -> Iterator[None]:
    """Skip ``blocks`` (the first blocks of a model, in order): the last returns ``hidden``.

    ``output`` is what the last block returned in a real pass (its container is reused). When an
    optimisation only changes activations after these blocks, their output is the same at every
    step, so each step runs only the blocks above. The blocks' own forward hooks still run.
    """
    def skip(*args, **kwargs):
        return _replace(output, hidden)

    for b in blocks:
        b.forward = skip
    try:
        yield
    finally:
        for b in blocks:
            del b.forward


@contextmanager
def capture_output(module: nn.Module, store: list) -> Iterator[list]:
    handle = module.register_forward_hook(lambda m, args, out: store.append(_hidden(out)))
    try:
        yield store
    finally:
        handle.remove()


@contextmanager
def capture_input(module: nn.Module, store: list) -> Iterator[list]:
    handle = module.register_forward_pre_hook(lambda m, args: store.append(args[0]))
    try:
        yield store
    finally:
        handle.remove()


def at_positions(hidden: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``hidden[i, positions[i]]`` for each row: (rows, dim)."""
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return hidden[rows, positions.to(hidden.device)]


#: Per-row index of each prompt's last token during a teacher-forced pass over prompt + target;
#: key-reading adapters (GRACE) read it, since the last position of such a batch is not the prompt's.
PROMPT_LAST: ContextVar[torch.Tensor | None] = ContextVar("prompt_last", default=None)


@contextmanager
def reading_prompts(positions: torch.Tensor) -> Iterator[None]:
    token = PROMPT_LAST.set(positions)
    try:
        yield
    finally:
        PROMPT_LAST.reset(token)
