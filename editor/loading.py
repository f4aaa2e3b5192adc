"""Loading a causal LM by hub id or local directory — never needing the network when it is local.

``load("gpt2")`` looks in the Hugging Face cache first and downloads only when the machine is
online (``HF_HUB_OFFLINE`` unset); ``load("./models/gpt2")`` reads that directory and nothing else.
A model that is not there gives an error that says what to download and where to put it.

``load(..., device_map="auto")`` spreads a model bigger than one device over the GPUs, CPU memory
and disk with accelerate (``pip install 'oneedit[big]'``); ``max_memory`` caps what each device
takes. See :mod:`editor.placement` for what can be edited where.
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


DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def resolve_device_map(device_map: str | dict | None):
    """``auto`` (or another accelerate strategy), a JSON file mapping module names to devices, or a
    dict; None stays None. Refused with the pip command when accelerate is not installed."""
    if device_map is None or device_map == "":
        return None
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        raise OneEditError("--device-map needs accelerate, which is not installed.",
                           hint="pip install 'oneedit[big]' (or: pip install 'accelerate>=1.0').")
    if isinstance(device_map, dict) or device_map in DEVICE_MAPS:
        return device_map
    path = Path(str(device_map)).expanduser()
    if path.suffix == ".json" and path.is_file():
        try:
            got = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise OneEditError(f"{path} is not JSON ({exc}).") from None
        if not isinstance(got, dict):
            raise OneEditError(f"{path} must map module names to devices, e.g. {{\"model.layers.0\": 0}}.")
        return got
    raise OneEditError(f"Unknown device map {device_map!r}.",
                       hint="Use " + ", ".join(DEVICE_MAPS) + ", or a .json file mapping module names to "
                            "devices (0, \"cpu\", \"disk\").")


def parse_max_memory(text: str | dict | None) -> dict | None:
    """``"0=70GiB,cpu=120GiB"`` (or ``cuda:0=...``) as accelerate's ``max_memory`` dict."""
    if not text:
        return None
    if isinstance(text, dict):
        return text
    import re

    out: dict = {}
    for part in str(text).split(","):
        dev, _, size = part.strip().partition("=")
        dev, size = dev.strip(), size.strip()
        if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B)?", size, flags=re.IGNORECASE):
            raise OneEditError(f"Bad --max-memory entry {part.strip()!r}.",
                               hint="Write DEVICE=SIZE pairs separated by commas, e.g. 0=70GiB,1=70GiB,cpu=120GiB.")
        if dev.isdigit():
            key: int | str = int(dev)
        elif dev.startswith("cuda:") and dev[5:].isdigit():
            key = int(dev[5:])
        elif dev in ("cpu", "disk", "mps"):
            key = dev
        else:
            raise OneEditError(f"Unknown device {dev!r} in --max-memory.", hint="Use 0, 1, … (GPUs), cpu or disk.")
        out[key] = int(float(size)) if re.fullmatch(r"[\d.]+", size) else size.replace(" ", "")  # bytes
    return out


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
         dtype: str | torch.dtype = "fp32", device_map: str | dict | None = None,
         max_memory: str | dict | None = None, offload_folder: str | Path | None = None) -> LoadedModel:
    """``device_map`` (with accelerate): place the model's blocks over the devices, ``max_memory``
    per device; ``device`` is then unused. Blocks that fit nowhere else go to disk: read from the
    model's own safetensors files (older ``.bin`` weights need an ``offload_folder`` to be copied to)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from editor.knowledge import read_card

    name = str(name_or_path)
    placed = resolve_device_map(device_map)
    dev = resolve_device(device) if placed is None else None
    dt = resolve_dtype(dtype)
    memory = parse_max_memory(max_memory)
    if memory and placed is None:
        raise OneEditError("--max-memory only applies with --device-map.", hint="Add --device-map auto.")
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
    mkw: dict = {}
    if placed is not None:
        mkw = dict(device_map=placed)
        if memory:
            mkw["max_memory"] = memory
        if offload_folder:  # safetensors weights offloaded to disk are read from the model's own files
            mkw["offload_folder"] = str(offload_folder)
    try:
        try:
            tokenizer = AutoTokenizer.from_pretrained(source, **kw)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dt, **kw, **mkw)
        except OSError:
            if kw["local_files_only"] or path.is_dir():
                raise
            tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dt, local_files_only=True, **mkw)
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
    if dev is not None:
        model.to(dev)
    model.eval()
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    card = read_card(path) if path.is_dir() else None
    return wrap(model, tokenizer, name=name, path=path if path.is_dir() else None, card=card)


def wrap(model, tokenizer, *, name: str, path: Path | None = None, card: dict | None = None) -> LoadedModel:
    """A :class:`LoadedModel` around an in-memory model (tests build tiny random ones)."""
    from editor import arch, placement

    arch.arch_of(model)  # refuse unsupported architectures early
    p = next(model.parameters())
    return LoadedModel(model, tokenizer, name, path, card, placement.input_device(model), p.dtype,
                       fingerprint(model))


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"} or \
        os.environ.get("ONEEDIT_OFFLINE", "").lower() in {"1", "true", "yes"}


@torch.no_grad()
def fingerprint(model) -> str:
    """Identifies the weights cheaply: config plus a strided sample of every parameter (offloaded
    ones read where accelerate keeps them, so a dispatched model has its undispatched fingerprint)."""
    from editor.placement import named_values

    h = hashlib.sha256()
    cfg = model.config.to_dict()
    h.update(json.dumps({k: v for k, v in cfg.items() if not k.startswith("_")}, sort_keys=True,
                        default=str).encode())
    for name, p in named_values(model):
        flat = p.detach().reshape(-1)
        step = max(1, flat.numel() // 1024)
        sample = flat[::step][:1024].to(torch.float32).cpu()
        h.update(name.encode())
        h.update(str(tuple(p.shape)).encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]
