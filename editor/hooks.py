"""Forward hooks used by the editors: read or change activations at chosen rows and positions.

Every hook lives in a context manager that removes it in ``finally``; they nest. Nothing here
replaces a module's ``forward`` for good: :func:`frozen_prefix` shadows it for the duration of the
context and puts back exactly what was there (accelerate's dispatch wrapper included).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Protocol, runtime_checkable

import torch
from torch import nn


def hidden_of(output):
    return output[0] if isinstance(output, tuple) else output


def with_hidden(output, hidden):
    if isinstance(output, tuple):
        return (hidden, *output[1:])
    return hidden


@contextmanager
def edit_output(module: nn.Module, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace a module's (first) output by ``fn(output)`` while the context is open."""
    handle = module.register_forward_hook(lambda m, args, out: with_hidden(out, fn(hidden_of(out))))
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
    An instance-level ``forward`` that was there before (accelerate's ``add_hook_to_module`` puts
    one) is saved and restored, never deleted.
    """
    def skip(*args, **kwargs):
        return with_hidden(output, hidden)

    missing = object()
    saved = [b.__dict__.get("forward", missing) for b in blocks]
    for b in blocks:
        b.forward = skip
    try:
        yield
    finally:
        for b, old in zip(blocks, saved, strict=True):
            if old is missing:
                del b.forward
            else:
                b.forward = old


@contextmanager
def capture_output(module: nn.Module, store: list) -> Iterator[list]:
    handle = module.register_forward_hook(lambda m, args, out: store.append(hidden_of(out)))
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


@runtime_checkable
class PromptAware(Protocol):
    """A hook owner that acts at the end of each prompt (GRACE). In a teacher-forced pass over
    prompt + answer the input does not say where the prompt ends, so the pass tells it."""

    def prompts_end_at(self, positions: torch.Tensor): ...


def prompt_aware_hooks(model: nn.Module) -> list[PromptAware]:
    """The :class:`PromptAware` objects whose hooks are registered on ``model`` or its modules."""
    found: dict[int, PromptAware] = {}
    for module in model.modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for fn in hooks.values():
                owner = getattr(fn, "__self__", None)
                if isinstance(owner, PromptAware):
                    found[id(owner)] = owner
    return list(found.values())


@contextmanager
def prompts_end_at(model: nn.Module, positions: torch.Tensor) -> Iterator[None]:
    """Tell every prompt-aware hook on ``model`` where each row's prompt ends for the passes inside."""
    with ExitStack() as stack:
        for owner in prompt_aware_hooks(model):
            stack.enter_context(owner.prompts_end_at(positions))
        yield
