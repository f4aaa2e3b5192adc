"""Loading a causal LM by hub id or local directory — never needing the network when it is local.

``load("gpt2")`` looks in the Hugging Face cache first and downloads only when the machine is
online (``HF_HUB_OFFLINE`` unset); ``load("./models/gpt2")`` reads that directory and nothing else.
A model that is not there gives an error that says what to download and where to put it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from oneedit.core import OneEditError

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16,
          "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16}


class ModelNotFoundError(OneEditError):
    pass


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    name: str
    path: Path | None
    card: dict | None
    device: torch.device
    dtype: torch.dtype
    fingerprint: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def model_type(self) -> str:
        return self.model.config.model_type

    @property
    def is_knowledge_model(self) -> bool:
        return bool(self.card and self.card.get("name") == "oneedit-knowledge")

    @property
    def hparams_name(self) -> str:
        return "oneedit-knowledge" if self.is_knowledge_model else self.model_type

    def codec(self):
        from editor.encoding import TextCodec

        return TextCodec(self.tokenizer, end_of_fact=bool(self.card and self.card.get("end_of_fact")))


def resolve_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    try:
        return DTYPES[name.lower()]
    except KeyError:
        raise OneEditError(f"Unknown dtype {name!r}.", hint="Use fp32, bf16 or fp16.") from None


def resolve_device(name: str | torch.device | None) -> torch.device:
    name = str(name or "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise OneEditError("--device cuda was asked for, but torch sees no CUDA GPU on this machine.",
                           hint="Use --device cpu, or install a CUDA build of torch on a GPU machine.")
    if name not in {"cpu", "cuda"} and not name.startswith("cuda:"):
        raise OneEditError(f"Unknown device {name!r}.", hint="Use cpu or cuda (or cuda:N).")
    return torch.device(name)


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name.strip("/").split("/", 1)[-1] or \
        Path(name).expanduser().exists()


def _not_found(name: str, cause: str) -> ModelNotFoundError:
    local = f"./models/{name.split('/')[-1]}"
    return ModelNotFoundError(
        f"Model {name!r} is not on this machine ({cause}).",
        hint=(f"On a machine with internet: `hf download {name} --local-dir {local}` "
              f"(or `huggingface-cli download`), copy that folder here, and pass `--model {local}`. "
              "Without --model, OneEdit uses the workspace's own knowledge model."),
        details={"model": name, "cause": cause},
    )


def load(name_or_path: str | Path, *, device: str | torch.device = "cpu",
         dtype: str | torch.dtype = "fp32") -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from editor.knowledge import read_card

    name = str(name_or_path)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # stdout stays clean for --json
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is a directory but holds no config.json.",
                                     hint="Point --model at a Hugging Face model directory "
                                          "(config.json, weights, tokenizer files).")
        kw = dict(local_files_only=True)
        source = str(path)
    elif _looks_like_path(name):
        raise _not_found(name, "no such directory")
    else:
        kw = dict(local_files_only=_offline())
        source = name
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **kw)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dt, **kw)
        except OSError:
            if kw["local_files_only"] or path.is_dir():
                raise
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dt, local_files_only=True)
    except OSError as exc:
        if path.is_dir():
            raise ModelNotFoundError(f"Could not load the model in {path}: {exc}",
                                     hint="Check that the directory holds the weights and tokenizer "
                                          "files that config.json describes.") from None
        raise _not_found(name, "not in the local Hugging Face cache and it could not be downloaded") from None
    except ValueError as exc:
        raise OneEditError(f"Could not load {name!r}: {exc}",
                           hint="OneEdit edits causal language models (GPT-2, GPT-J, GPT-NeoX, LLaMA, "
                                "Mistral, Qwen2).") from None
    model.to(dev)
    model.eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    card = read_card(path) if path.is_dir() else None
    return wrap(model, tokenizer, name=name, path=path if path.is_dir() else None, card=card)


def wrap(model, tokenizer, *, name: str, path: Path | None = None, card: dict | None = None) -> LoadedModel:
    """A :class:`LoadedModel` around an in-memory model (tests build tiny random ones)."""
    from editor import arch

    arch.arch_of(model)  # refuse unsupported architectures early
    p = next(model.parameters())
    return LoadedModel(model, tokenizer, name, path, card, p.device, p.dtype, fingerprint(model))


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"} or \
        os.environ.get("ONEEDIT_OFFLINE", "").lower() in {"1", "true", "yes"}


@torch.no_grad()
def fingerprint(model) -> str:
    """Identifies the weights cheaply: config plus a strided sample of every parameter."""
    h = hashlib.sha256()
    cfg = model.config.to_dict()
    h.update(json.dumps({k: v for k, v in cfg.items() if not k.startswith("_")}, sort_keys=True,
                        default=str).encode())
    for name, p in model.named_parameters():
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // 1024)
        sample = flat[::step][:1024].to(torch.float32).cpu()
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]
