"""Where a model runs each module and keeps each weight — also when accelerate dispatched it.

A model loaded with ``device_map`` carries accelerate's ``AlignDevicesHook`` on its modules. A
module runs on its hook's ``execution_device``. An *offloaded* module's parameters sit on the
``meta`` device between passes and are read from the hook's ``weights_map`` at every pass: a dict
of CPU tensors (offloaded to CPU memory) or files (offloaded to disk: accelerate's offload folder,
or the model's own safetensors files). An edit must land where the next pass reads:

* a resident module — its parameter;
* a module offloaded to CPU memory — the weights-map tensor (each pass copies it to the device);
* a module offloaded to disk — nowhere safe: writing would change the model's files on disk, so
  :func:`writable_weight` refuses, naming the module.

Nothing here imports accelerate: the hooks are recognised by what they carry.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from oneedit.core import OneEditError

RESIDENT, OFFLOADED_CPU, OFFLOADED_DISK = "resident", "cpu", "disk"


class OffloadedWeightError(OneEditError):
    pass


def align_hook(module: nn.Module):
    """The module's accelerate ``AlignDevicesHook`` (inside a ``SequentialHook`` too), or None."""
    hook = getattr(module, "_hf_hook", None)
    if hook is None:
        return None
    for h in getattr(hook, "hooks", (hook,)):
        if hasattr(h, "execution_device") and hasattr(h, "weights_map"):
            return h
    return None


def is_dispatched(model: nn.Module) -> bool:
    return any(align_hook(m) is not None for m in model.modules())


def _device(d) -> torch.device:
    if isinstance(d, int):
        return torch.device("cuda", d)
    return torch.device(d)


def execution_device(module: nn.Module) -> torch.device:
    """Where ``module`` computes: its hook's execution device, else where its weights are."""
    hook = align_hook(module)
    if hook is not None and hook.execution_device is not None:
        return _device(hook.execution_device)
    for t in module.parameters():
        if t.device.type != "meta":
            return t.device
    for t in module.buffers():
        if t.device.type != "meta":
            return t.device
    return torch.device("cpu")


def input_device(model: nn.Module) -> torch.device:
    """Where a model's inputs go: a dispatched model's main device (the hook on the model moves
    inputs there), else the input embedding's device."""
    hook = align_hook(model)
    if hook is not None and hook.execution_device is not None:
        return _device(hook.execution_device)
    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if emb is not None:
        return execution_device(emb)
    return execution_device(model)


def _weights_entry(module: nn.Module, name: str):
    """``(mapping, key)`` where an offloaded module's tensor ``name`` is stored, or None."""
    hook = align_hook(module)
    if hook is None or not getattr(hook, "offload", False) or hook.weights_map is None:
        return None
    wm, key = hook.weights_map, name
    if hasattr(wm, "dataset") and hasattr(wm, "prefix"):  # accelerate's PrefixedDataset
        wm, key = wm.dataset, wm.prefix + name
    return wm, key


def storage(module: nn.Module, name: str = "weight") -> str:
    """:data:`RESIDENT`, :data:`OFFLOADED_CPU` or :data:`OFFLOADED_DISK` for a module's tensor."""
    entry = _weights_entry(module, name)
    if entry is None:
        return RESIDENT
    wm, key = entry
    if isinstance(wm, dict):
        return OFFLOADED_CPU
    held = getattr(wm, "state_dict", None)  # accelerate's OffloadedWeightsLoader: memory first, then disk
    return OFFLOADED_CPU if isinstance(held, dict) and key in held else OFFLOADED_DISK


def stored_value(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The value a pass gives ``module.<name>`` (read-only: fingerprints, base copies)."""
    entry = _weights_entry(module, name)
    if entry is None:
        return getattr(module, name).detach()
    wm, key = entry
    return wm[key]


def writable_weight(module: nn.Module, path: str, name: str = "weight") -> torch.Tensor:
    """The tensor an in-place edit of ``module.<name>`` must change for the next pass to see it."""
    where = storage(module, name)
    if where == RESIDENT:
        return getattr(module, name).data
    if where == OFFLOADED_CPU:
        wm, key = _weights_entry(module, name)
        return wm[key] if isinstance(wm, dict) else wm.state_dict[key]
    raise offloaded_error([path])


def offloaded_error(paths: list[str]) -> OffloadedWeightError:
    return OffloadedWeightError(
        f"{len(paths)} weight(s) the edit writes are offloaded to disk by the device map: "
        + ", ".join(paths) + ". An edit cannot be written into weights read from files at every pass "
        "(it would change the model's files).",
        hint="Give the devices more room with --max-memory (e.g. --max-memory 0=70GiB,cpu=120GiB) so these "
             "layers stay in GPU or CPU memory, or edit layers that stay resident (memit.layers in the "
             "model's hyperparameter file).",
        details={"offloaded": paths})


def named_values(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``model.named_parameters()`` with the values a pass uses (offloaded ones read from their
    weights map), so a dispatched model fingerprints like the same model in one piece."""
    for name, p in model.named_parameters():
        if p.device.type != "meta":
            yield name, p.detach()
            continue
        owner, _, attr = name.rpartition(".")
        yield name, stored_value(model.get_submodule(owner), attr)
