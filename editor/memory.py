"""How much memory a device has free, and a clear refusal when work will not fit.

Free memory is measured, not guessed: ``torch.cuda.mem_get_info`` on a GPU (what the loaded model
left), psutil's available memory on the CPU when psutil is installed (no check otherwise).
``ONEEDIT_MEMORY_BUDGET`` (e.g. ``8GiB``), or a ``budget`` argument, caps every device's free
memory at that size: for sharing a machine, and for testing the refusal on a small model.
"""

from __future__ import annotations

import os
import re

import torch

from oneedit.core import OneEditError

BUDGET_ENV = "ONEEDIT_MEMORY_BUDGET"
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "m": 1e6, "mb": 1e6, "mib": 2**20,
          "g": 1e9, "gb": 1e9, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40}


class NotEnoughMemoryError(OneEditError):
    """Not Python's ``MemoryError``: raised *before* the allocation, with what to do."""


def parse_size(text: str | int | float) -> int:
    if isinstance(text, int | float):
        return int(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise OneEditError(f"Cannot read the memory size {text!r}.", hint="Write e.g. 512MiB, 8GiB or 2GB.")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def budget(override: int | str | None = None) -> int | None:
    if override is not None:
        return parse_size(override)
    env = os.environ.get(BUDGET_ENV, "").strip()
    return parse_size(env) if env else None


def free(device: torch.device | str, cap: int | str | None = None) -> int | None:
    """Bytes free on ``device`` (None: unknown, so unchecked), capped by the budget."""
    device = torch.device(device)
    got: int | None = None
    if device.type == "cuda" and torch.cuda.is_available():
        got = int(torch.cuda.mem_get_info(device)[0])
    elif device.type == "cpu":
        try:
            import psutil
        except ImportError:
            got = None
        else:
            got = int(psutil.virtual_memory().available)
    limit = budget(cap)
    if limit is not None:
        got = limit if got is None else min(got, limit)
    return got


def check(needs: dict[torch.device, int], *, what: str, why: str, hint: str,
          cap: int | str | None = None) -> None:
    """Raise :class:`NotEnoughMemoryError` when any device has less free memory than ``needs`` says."""
    short = []
    for device, need in needs.items():
        have = free(device, cap)
        if have is not None and need > have:
            short.append((str(device), need, have))
    if short:
        where = "; ".join(f"{d}: needs {human(n)}, {human(h)} free" for d, n, h in short)
        raise NotEnoughMemoryError(f"{what} will not fit in memory ({where}). {why}", hint=hint,
                           details={"needs": {d: n for d, n, _ in short}, "free": {d: h for d, _, h in short}})
