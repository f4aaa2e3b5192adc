"""The one place that knows Hugging Face attribute paths.

Each supported architecture (keyed by ``config.model_type``) names its transformer blocks and the
MLP output projection that MEMIT rewrites and GRACE reads its keys from. Everything
else in the editor asks this table, so adding an architecture is one entry here plus a
hyperparameter file in ``editor/hparams/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from oneedit.core import OneEditError


@dataclass(frozen=True, slots=True)
class ArchSpec:
    model_type: str
    blocks: str          # dotted path of the ModuleList of transformer blocks
    mlp_out: str         # the MLP's output projection, relative to a block
    conv1d: bool = False  # GPT-2's Conv1D stores weight as (in, out) instead of (out, in)

    def block_path(self, layer: int) -> str:
        return f"{self.blocks}.{layer}"

    def mlp_out_path(self, layer: int) -> str:
        return f"{self.blocks}.{layer}.{self.mlp_out}"


ARCHITECTURES: dict[str, ArchSpec] = {
    spec.model_type: spec for spec in (
        ArchSpec("gpt2", "transformer.h", "mlp.c_proj", conv1d=True),
        ArchSpec("gptj", "transformer.h", "mlp.fc_out"),
        ArchSpec("gpt_neox", "gpt_neox.layers", "mlp.dense_4h_to_h"),
        ArchSpec("llama", "model.layers", "mlp.down_proj"),
        ArchSpec("mistral", "model.layers", "mlp.down_proj"),
        ArchSpec("qwen2", "model.layers", "mlp.down_proj"),
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


def num_layers(model: nn.Module) -> int:
    return len(model.get_submodule(arch_of(model).blocks))


def base_model_of(model: nn.Module) -> nn.Module:
    """The module that owns the blocks (``transformer``, ``model``, ``gpt_neox``): every pass,
    through the LM head or not, goes through it."""
    return model.get_submodule(arch_of(model).blocks.rsplit(".", 1)[0])
