"""Workspace configuration (``config.yaml`` in the workspace)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from oneedit.core import WorkspaceError

CONFIG_FILE = "config.yaml"
CONFIG_VERSION = 1


def default_workspace() -> Path:
    """``$ONEEDIT_HOME`` if set, else ``./.oneedit``."""
    env = os.environ.get("ONEEDIT_HOME")
    return Path(env).expanduser() if env else Path.cwd() / ".oneedit"


@dataclass
class StoreConfig:
    backend: str = "embedded"
    options: dict = field(default_factory=dict)


@dataclass
class ModelConfig:
    """Which model the workspace edits and how it runs (every model command can override)."""

    name: str = "default"       # "default" (the workspace's knowledge model), a hub id or a local directory
    device: str = "cpu"         # cpu | cuda | cuda:N
    dtype: str = "fp32"         # fp32 | bf16 | fp16
    corpus: list = field(default_factory=list)  # text/JSONL files for MEMIT's key statistics (real models)
    cov_samples: int = 0        # 0: the hyperparameter file's value
    device_map: str = ""        # "" (the whole model on `device`), auto, balanced, sequential or a .json map (accelerate)
    max_memory: str = ""        # with device_map: e.g. "0=70GiB,cpu=120GiB"


@dataclass
class PolicyConfig:
    """How the controller decides (see ``controller.planner.ResolutionPolicy``, ``controller.users``
    and ``controller.safety``). Every part has working defaults; ``config.yaml`` overrides them."""

    resolution: dict = field(default_factory=dict)   # default / roles / relations -> replace|reject|needs_review
    trust: dict = field(default_factory=dict)        # initial, review_below, accepted, rejected, rolled_back
    rate_limit: dict = field(default_factory=dict)   # role -> edits per minute (0: unlimited)
    toxicity: dict = field(default_factory=dict)     # enabled, threshold, review_threshold, lexicon
    token_days: float = 90.0                          # days an API token works after it is issued or rotated (0: forever)
    moderator: str = ""                               # PROVIDER:MODEL of a chat model, or "" for none
    method: str = "memit"                             # default model-editing method for single edits
    import_method: str = "memit"                      # default for batch imports


@dataclass
class ServiceConfig:
    """``oneedit serve``: where it listens and how its worker batches model edits."""

    host: str = "127.0.0.1"
    port: int = 8000
    batch_window: float = 0.25   # seconds the worker waits for more edits to join a MEMIT batch
    max_batch: int = 32          # most edits in one MEMIT batch
    probe: bool = True           # ask the model each edited fact before and after (shown in the page)
    max_body_bytes: int = 1 << 20  # a request body larger than this is refused (413) before anything else
    max_questions: int = 8       # questions one /api/ask request may hold
    questions_per_minute: int = 60  # questions a user may ask per minute (0: unlimited)


@dataclass
class ConsistencyConfig:
    """How the model keeps up with the KG (docs/editor.md, "Lifelong consistency")."""

    keep_neighbours: int = 64      # KG neighbours of a model batch held in place by its MEMIT solve (0: off)
    repair: int = 8                # drifted facts re-written with the next model batch, at most (0: off)
    probe_per_relation: int = 32   # same-relation neighbours a batch probes for drift, per relation (0: all)
    consolidate_below: float = 0.0  # audited agreement below which the model is consolidated (0: never)
    audit_every: int = 64          # the service audits a sample after this many model edits ...
    audit_sample: int = 256        # ... of this many facts (0: all of them)
    retract: bool = True           # a retraction without a replacement teaches the model "unknown" there
    #: consolidation's training (``editor.knowledge.RefreshConfig`` fields: lr, max_steps, rehearsal,
    #: min_rehearsal, stop_at, train, anchor, neighbours ...); empty: the measured defaults
    refresh: dict = field(default_factory=dict)


@dataclass
class WorkspaceConfig:
    version: int = CONFIG_VERSION
    store: StoreConfig = field(default_factory=StoreConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    consistency: ConsistencyConfig = field(default_factory=ConsistencyConfig)
    schema: str = "schema.yaml"  # relative to the workspace
    user: str = "admin"  # the local user the CLI acts as
    created: str = ""
    source: str = ""  # the data the KG was initialised from

    def save(self, root: Path) -> None:
        (root / CONFIG_FILE).write_text(yaml.safe_dump(asdict(self), sort_keys=False), encoding="utf-8")

    @classmethod
    def load(cls, root: Path) -> WorkspaceConfig:
        path = root / CONFIG_FILE
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise WorkspaceError(f"No OneEdit workspace at {root}.",
                                 hint="Create one with `oneedit init` (or set ONEEDIT_HOME / --workspace).") from None
        except NotADirectoryError:
            raise WorkspaceError(f"{root} is a file, not a workspace folder.",
                                 hint="Point --workspace (or ONEEDIT_HOME) at the folder `oneedit init` made.") from None
        except (PermissionError, UnicodeDecodeError) as exc:
            raise WorkspaceError(f"Cannot read {path}: {exc}.",
                                 hint="Check the workspace's permissions and that the file is text.") from None
        except yaml.YAMLError as exc:
            raise WorkspaceError(f"{path} is not valid YAML: {exc}",
                                 hint="Fix the file by hand or move the workspace aside and run `oneedit init`.") from None
        if raw.get("version") != CONFIG_VERSION:
            raise WorkspaceError(f"{path} has config version {raw.get('version')!r}; this OneEdit reads "
                                 f"version {CONFIG_VERSION}.")
        try:
            store = StoreConfig(**(raw.pop("store", None) or {}))
            model = ModelConfig(**(raw.pop("model", None) or {}))
            policy = PolicyConfig(**(raw.pop("policy", None) or {}))
            service = ServiceConfig(**(raw.pop("service", None) or {}))
            consistency = ConsistencyConfig(**(raw.pop("consistency", None) or {}))
        except TypeError as exc:
            raise WorkspaceError(f"{path}: {exc}", hint="Compare with a fresh `oneedit init` config.") from None
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        return cls(store=store, model=model, policy=policy, service=service, consistency=consistency, **known)
