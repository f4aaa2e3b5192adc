"""The one place that knows Hugging Face attribute paths.

Each supported architecture (keyed by ``config.model_type``) names its transformer blocks, the
MLP output projection that MEMIT rewrites, and how to read the layer count and width. Everything
else in the editor asks this table, so adding an architecture is one entry here plus a
hyperparameter file in ``editor/hparams/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from oneedit.core import OneEditError


@dataclass(frozen=True, slots=True)
class ArchSpec:
    model_type: str
    blocks: str          # dotted path of the ModuleList of transformer blocks
    mlp_out: str         # the MLP's output projection, relative to a block
    final_norm: str      # the norm before the LM head
    conv1d: bool = False  # GPT-2's Conv1D stores weight as (in, out) instead of (out, in)

    def block_path(self, layer: int) -> str:
        return f"{self.blocks}.{layer}"

    def mlp_out_path(self, layer: int) -> str:
        return f"{self.blocks}.{layer}.{self.mlp_out}"


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.model_type: spec for spec in (
        ArchSpec("gpt2", "transformer.h", "mlp.c_proj", "transformer.ln_f", conv1d=True),
        ArchSpec("gptj", "transformer.h", "mlp.fc_out", "transformer.ln_f"),
        ArchSpec("gpt_neox", "gpt_neox.layers", "mlp.dense_4h_to_h", "gpt_neox.final_layer_norm"),
        ArchSpec("llama", "model.layers", "mlp.down_proj", "model.norm"),
        ArchSpec("mistral", "model.layers", "mlp.down_proj", "model.norm"),
        ArchSpec("qwen2", "model.layers", "mlp.down_proj", "model.norm"),
    )
}


def arch_of(model: nn.Module) -> ArchSpec:
    model_type = getattr(model.config, "model_type", None)
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise OneEditError(
            f"Architecture {model_type!r} is not supported by the editor.",
            hint="Supported: " + ", ".join(sorted(ARCHITECTURES)) + ". Adding one is an entry in "
                 "editor/arch.py and a hyperparameter file in editor/hparams/.",
        ) from None


def submodule(model: nn.Module, path: str) -> nn.Module:
    return model.get_submodule(path)


def num_layers(model: nn.Module) -> int:
    return len(submodule(model, arch_of(model).blocks))


def mlp_weight(model: nn.Module, layer: int) -> torch.nn.Parameter:
    return submodule(model, arch_of(model).mlp_out_path(layer)).weight


def as_out_in(model: nn.Module, tensor: torch.Tensor) -> torch.Tensor:
    """View a projection weight (or a delta shaped like it) as (out_features, in_features)."""
    return tensor.T if arch_of(model).conv1d else tensor


def from_out_in(model: nn.Module, delta: torch.Tensor) -> torch.Tensor:
    """Shape an (out, in) delta like the module's stored weight."""
    return delta.T if arch_of(model).conv1d else delta
