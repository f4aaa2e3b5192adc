"""Editing a Hugging Face model from Python, the way EasyEdit users do it — without a KG.

    from oneedit import Editor

    editor = Editor.from_pretrained("gpt2", corpus="wiki.txt")     # or a local directory
    result = editor.edit(prompts=["The Eiffel Tower is in the city of"], subjects=["Eiffel Tower"],
                         targets=["Rome"], rephrases=[["Where is the Eiffel Tower? In"]],
                         locality=[["The Colosseum is in the city of"]])
    result.model          # the edited transformers model (the same object as editor.model)
    result.summary        # reliability / generality / locality before and after, exact match and
    result.metrics        # token accuracy, overall and per edit

Edits stay in memory: ``editor.undo(edit_id)`` takes one back, ``editor.reset()`` all of them and
``editor.save(DIR)`` writes a plain Hugging Face directory with them merged (`oneedit model
export`). The KG-backed
system (interpreter, controller, ledger, workspace) is :class:`oneedit.system.OneEdit`; see
``docs/api.md``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from oneedit.core import OneEditError

METHODS = ("memit", "grace")


@dataclass
class EditResult:
    """What one :meth:`Editor.edit` call did."""

    model: object                 # the edited ``transformers`` model
    edit_ids: list[str]           # one per batch written (``editor.undo`` takes them back)
    summary: dict                 # {"before": {metric: {...}}, "after": {...}, "edit_seconds", ...}
    metrics: list[dict] = field(default_factory=list)  # per edit: prompt, target, pre, post

    def to_dict(self) -> dict:
        return {"edit_ids": self.edit_ids, "summary": self.summary, "metrics": self.metrics}


class Editor:
    """A causal LM you can edit with MEMIT (batched weight edits) or GRACE (a side codebook).

    Build it with :meth:`from_pretrained` (hub id or local directory), :meth:`from_model` (an
    in-memory ``transformers`` model and tokenizer) or :meth:`from_workspace` (a OneEdit
    workspace's knowledge model, with its KG sentences as the statistics corpus).
    """

    def __init__(self, editable, *, method: str = "memit"):
        _check_method(method)
        self.editable = editable
        self.editable.persist = False
        self.method = method
        self._batches = 0

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, method: str = "memit", device: str = "cpu",
                        dtype: str = "fp32", corpus: str | Path | Sequence[str] | None = None,
                        cov_samples: int | None = None, hparams=None, memit: Mapping | None = None,
                        grace: Mapping | None = None, **load_options) -> Editor:
        """Load ``name_or_path`` (a hub id, found in the local Hugging Face cache or downloaded when
        the machine is online, or a local directory) for editing.

        ``corpus``: MEMIT's key statistics are read from it — a ``.txt`` (one text per line) or
        ``.jsonl`` (``{"text": ...}``) path, a list of such paths, or a list of texts. A OneEdit
        knowledge-model directory brings its own (``corpus.txt``). GRACE needs none. ``hparams``
        replaces the architecture's shipped hyperparameters (:class:`editor.hparams.Hparams`);
        ``memit``/``grace`` override single fields of them. ``load_options`` go to
        :func:`editor.loading.load` (``device_map="auto"``, ``max_memory=...``: accelerate).
        """
        from editor.loading import load

        _check_method(method)
        loaded = load(name_or_path, device=device, dtype=dtype, **load_options)
        if corpus is None and loaded.path is not None and (loaded.path / "corpus.txt").is_file():
            corpus = loaded.path / "corpus.txt"
        return cls._build(loaded, method, corpus, cov_samples, hparams, memit, grace)

    @classmethod
    def from_model(cls, model, tokenizer, *, name: str = "in-memory", method: str = "memit",
                   corpus: str | Path | Sequence[str] | None = None, cov_samples: int | None = None,
                   hparams=None, memit: Mapping | None = None, grace: Mapping | None = None) -> Editor:
        """Edit a ``transformers`` model already in memory (edited in place)."""
        from editor.loading import wrap

        _check_method(method)
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        return cls._build(wrap(model, tokenizer, name=name), method, corpus, cov_samples, hparams, memit, grace)

    @classmethod
    def from_workspace(cls, root: str | Path | None = None, *, method: str = "memit", **kw) -> Editor:
        """The knowledge model of a OneEdit workspace (``./.oneedit`` or ``$ONEEDIT_HOME`` by
        default), as trained — without the workspace's own edits, which stay untouched."""
        from oneedit.models import base_dir, has_default, kg_corpus
        from oneedit.workspace import Workspace

        with Workspace.open(root) as ws:
            if not has_default(ws):
                raise OneEditError(f"The workspace at {ws.root} has no knowledge model yet.",
                                   hint="Run `oneedit init` (or `oneedit model train`) first.")
            path, corpus = base_dir(ws), kg_corpus(ws)
        return cls.from_pretrained(path, method=method, corpus=kw.pop("corpus", None) or corpus, **kw)

    @classmethod
    def _build(cls, loaded, method, corpus, cov_samples, hparams, memit, grace) -> Editor:
        from editor import hparams as hp_mod
        from editor.session import EditableModel

        hp = hparams or hp_mod.load(loaded.hparams_name)
        if memit or grace or cov_samples:
            hp = hp_mod.Hparams(hp.name, hp.memit.replace(**dict(memit or {}),
                                                          **({"cov_samples": cov_samples} if cov_samples else {})),
                                hp.grace.replace(**dict(grace or {})), hp.notes)
        return cls(EditableModel(loaded, None, corpus=_corpus_source(corpus), hparams=hp), method=method)

    # -- the model -------------------------------------------------------------------------------
    @property
    def model(self):
        return self.editable.model

    @property
    def tokenizer(self):
        return self.editable.codec.tokenizer

    @property
    def edit_ids(self) -> list[str]:
        return self.editable.edit_ids()

    def generate(self, prompt: str, max_new_tokens: int = 12) -> str:
        """The model's greedy continuation of ``prompt`` (edits included)."""
        from editor.probe import continuations
        from editor.verbalize import Prompt

        return continuations(self.model, self.editable.codec, [Prompt(prompt, "", "")],
                             max_new_tokens=max_new_tokens)[0]

    # -- editing ---------------------------------------------------------------------------------
    def edit(self, prompts: Sequence[str | Sequence[str]], targets: Sequence[str], subjects: Sequence[str] | None = None, *,
             rephrases: Sequence[str | Sequence[str]] | None = None,
             locality: Sequence[str | Sequence[str]] | None = None,
             ground_truth: Sequence[str] | None = None, method: str | None = None,
             batch_size: int | None = None, sequential: bool = False, progress=None) -> EditResult:
        """Write ``prompts[i]`` → ``targets[i]`` into the model and measure the edits.

        ``prompts[i]`` is one prompt, or a list of phrasings of the same fact that are all written
        (on a small model, more phrasings generalise better to the held-out ``rephrases``).
        ``subjects[i]`` is the subject's surface form inside ``prompts[i]`` (MEMIT reads its keys at
        the subject's last token on pretrained models); ``rephrases[i]`` are held-out phrasings
        that should now give the target (generality, never used to edit); ``locality[i]`` are
        prompts whose continuation must not move (scored against what the unedited model said).
        ``ground_truth[i]`` is the old answer, kept in the per-edit metrics. Edits go in batches
        of ``batch_size`` (default: all at once); ``sequential`` edits one batch after another and
        scores each right after it. The model is edited in place and returned as ``result.model``.
        """
        from editor.evaluate import METRICS, Case, measure, measure_each, set_locality_refs
        from editor.memit import Request
        from editor.verbalize import Fact, Prompt

        method = method or self.method
        _check_method(method)
        n = len(prompts)
        subjects = list(subjects) if subjects is not None else [""] * n
        per_edit = {"targets": targets, "subjects": subjects, "rephrases": rephrases, "locality": locality,
                     "ground_truth": ground_truth}
        for name, value in per_edit.items():
            if value is not None and (isinstance(value, str) or len(value) != n):
                raise OneEditError(f"edit(): {name} must be a list with one entry per prompt ({n}), got "
                                   f"{'a string' if isinstance(value, str) else len(value)}.",
                                   hint="Pass lists of the same length: prompts[i], targets[i], subjects[i], ...")
        if n == 0:
            raise OneEditError("edit(): no prompts given.", hint="Pass at least one prompt and its target.")
        memit_subject = method == "memit" and self.editable.hp.memit.key_position == "subject_last"
        cases = []
        for i, (p, t, s) in enumerate(zip(prompts, targets, subjects, strict=True)):
            phrasings = _strings(p)
            if not phrasings or not all(x.strip() for x in phrasings):
                raise OneEditError(f"edit(): prompt {i} is empty.", hint="Give the text the target should follow.")
            if not isinstance(t, str) or not t.strip():
                raise OneEditError(f"edit(): target {i} is empty.", hint="Give the answer the prompt should now get.")
            if memit_subject and not s:
                raise OneEditError(f"edit(): MEMIT reads this model's keys at the subject's last token, and "
                                   f"prompt {i} ({p!r}) has no subject.",
                                   hint="Pass subjects=[...] with each prompt's subject as it appears in it.")
            missing = [x for x in phrasings if s and s not in x]
            if missing:
                raise OneEditError(f"edit(): subject {i} ({s!r}) does not occur in prompt {i} ({missing[0]!r}).",
                                   hint="The subject must be written exactly as it appears in the prompt.")
            target = t if t[:1].isspace() else " " + t
            gen = _strings(rephrases[i] if rephrases is not None else [])
            loc = _strings(locality[i] if locality is not None else [])
            cases.append(Case(case_id=str(i), fact=Fact(s, "", target.strip()),
                              old_object=(ground_truth[i] if ground_truth is not None else ""),
                              request=Request.of([Prompt(x.rstrip(), target, s) for x in phrasings]),
                              generality=[Prompt(g.rstrip(), target, s) for g in gen],
                              locality=[("locality", Prompt(x.rstrip(), "", "")) for x in loc],
                              portability=[]))
        em = self.editable
        model, codec = em.model, em.codec
        set_locality_refs(model, codec, cases)
        before, pre = measure(model, codec, cases), measure_each(model, codec, cases)
        size = 1 if sequential and not batch_size else (batch_size or n)
        ids, right_after, seconds = [], [], 0.0
        for start in range(0, n, size):
            batch = cases[start: start + size]
            self._batches += 1
            edit_id = f"e{self._batches}"
            while edit_id in em.edit_ids():
                self._batches += 1
                edit_id = f"e{self._batches}"
            t0 = time.perf_counter()
            em.edit(edit_id, [c.request for c in batch], method)
            seconds += time.perf_counter() - t0
            ids.append(edit_id)
            if sequential:
                right_after.extend(measure_each(model, codec, batch))
            if progress:
                progress(min(start + size, n), n)
        after, post = measure(model, codec, cases), measure_each(model, codec, cases)
        rows = []
        for i, c in enumerate(cases):
            row = {"case": i, "prompts": [x.text for x in c.request.prompts], "subject": c.fact.subject,
                   "target": c.fact.object, "ground_truth": c.old_object or None,
                   "pre": pre[i], "post": post[i]}
            if sequential:
                row["right_after"] = right_after[i]
            rows.append(row)
        summary = {"method": method, "edits": n, "batch_size": size, "sequential": sequential,
                   "edit_seconds": round(seconds, 3), "edits_per_second": round(n / seconds, 3) if seconds else None,
                   "before": {m: before[m] for m in METRICS if m != "portability"},
                   "after": {m: after[m] for m in METRICS if m != "portability"}}
        return EditResult(model, ids, summary, rows)

    def undo(self, edit_id: str) -> dict:
        """Take one edit (one batch of an :meth:`edit` call) back out of the model."""
        return self.editable.undo(edit_id)

    def save(self, path: str | Path, *, dtype: str | None = None, force: bool = False,
             skip_grace: bool = False) -> dict:
        """Write the edited model as a plain Hugging Face directory (MEMIT edits merged; GRACE
        edits refused unless ``skip_grace``), loadable with ``AutoModelForCausalLM.from_pretrained``;
        see ``oneedit model export`` in docs/editor.md. Returns what was written."""
        return self.editable.export(path, dtype=dtype, force=force, skip_grace=skip_grace)

    def reset(self) -> None:
        """Take every edit back: the model is bit for bit the one loaded."""
        for edit_id in reversed(self.editable.edit_ids()):
            self.editable.undo(edit_id, recheck=False)
        self.editable.weights.restore_base()


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise OneEditError(f"Unknown editing method {method!r}.", hint=f"Use one of: {', '.join(METHODS)}.")


def _strings(x) -> list[str]:
    if isinstance(x, str):
        return [x]
    return [str(v) for v in x]


def _corpus_source(corpus):
    """Texts for the key statistics, read lazily (GRACE-only use never reads them)."""
    if corpus is None:
        return ()
    if isinstance(corpus, (str, Path)):
        paths = [corpus]
    elif all(isinstance(c, Path) for c in corpus):
        paths = list(corpus)
    else:
        return list(corpus)

    def read():
        from oneedit.models import read_corpus

        return read_corpus(paths)
    return read
