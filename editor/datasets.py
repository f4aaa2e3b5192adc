"""The field's standard editing datasets: CounterFact (ROME/MEMIT) and zsRE (as EasyEdit ships it).

Reads and writes the public JSON files and scores an edited model on them the way the papers' code
does, so the numbers compare; each is reported next to this project's exact match (greedy
generation says the answer). Definitions (docs/editor.md, "Standard datasets"):

* **CounterFact** — every probe is scored by the probability of both answers, ``P(x) =
  exp(-mean token NLL of x)`` given the prompt (teacher forced, as ROME/MEMIT's
  ``test_batch_prediction``). Efficacy score: share of rewrite prompts with ``P(new) > P(true)``;
  efficacy magnitude: mean ``P(new) - P(true)``; paraphrase score/magnitude: the same on the
  paraphrase prompts; neighbourhood score: share of neighbourhood prompts with ``P(true) >
  P(new)``, magnitude mean ``P(true) - P(new)``; score: the harmonic mean of the three scores.
  Each is averaged over a record's prompts, then over records (MEMIT's ``summarize``).
* **zsRE** — EasyEdit's teacher-forced token accuracy: the share of the answer's tokens the model
  ranks first given the gold prefix, on ``src`` (rewrite_acc) and ``rephrase`` (rephrase_acc);
  locality_acc: the share of ``loc_ans``'s positions (teacher forced after ``loc``) where the
  edited model ranks first the same token as the unedited one.

The module never sees the KG: ``oneedit.evaluation`` draws files from it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from editor.probe import greedy, target_nll, target_predictions, teacher_forced
from editor.request import Request
from editor.verbalize import Prompt
from oneedit.core import OneEditError

FORMATS = ("counterfact", "zsre")

HINTS = {
    "counterfact": 'A CounterFact file (MEMIT/ROME\'s counterfact.json) is a JSON list of records like '
                   '{"case_id": 0, "requested_rewrite": {"prompt": "The mother tongue of {} is", '
                   '"subject": "Danielle Darrieux", "target_new": {"str": "English"}, "target_true": '
                   '{"str": "French"}, "relation_id": "P103"}, "paraphrase_prompts": ["..."], '
                   '"neighborhood_prompts": ["..."]}: "{}" marks where the subject goes, the prompt lists '
                   'hold text, neighbourhood prompts are answered by target_true.',
    "zsre": 'A zsRE file (EasyEdit\'s zsre_mend_eval.json) is a JSON list of records like {"subject": '
            '"Watts Humphrey", "src": "What university did Watts Humphrey attend?", "rephrase": "...", '
            '"alt": "University of Michigan", "answers": ["Trinity College"], "loc": "nq question: ...", '
            '"loc_ans": "..."}: every field text ("answers" a list of text); "cond" and "pred" optional.',
}

#: What each format reports, in order: (key, label). Keys are the field's names.
METRICS: dict[str, tuple[tuple[str, str], ...]] = {
    "counterfact": (
        ("efficacy_score", "efficacy score (ES)"),
        ("efficacy_magnitude", "efficacy magnitude (EM)"),
        ("paraphrase_score", "paraphrase score (PS)"),
        ("paraphrase_magnitude", "paraphrase magnitude (PM)"),
        ("neighborhood_score", "neighborhood score (NS)"),
        ("neighborhood_magnitude", "neighborhood magnitude (NM)"),
        ("score", "score (harmonic mean of ES, PS, NS)"),
        ("efficacy_exact_match", "exact match: rewrite prompts say target_new"),
        ("paraphrase_exact_match", "exact match: paraphrases say target_new"),
        ("neighborhood_exact_match", "exact match: neighbourhood prompts say target_true"),
    ),
    "zsre": (
        ("rewrite_acc", "reliability: token accuracy on src (rewrite_acc)"),
        ("rephrase_acc", "generality: token accuracy on rephrase (rephrase_acc)"),
        ("locality_acc", "locality: tokens as before on loc (locality_acc)"),
        ("rewrite_exact_match", "exact match: src says alt"),
        ("rephrase_exact_match", "exact match: rephrase says alt"),
        ("locality_exact_match", "exact match: loc says what it said before"),
    ),
}


class DatasetError(OneEditError):
    """A dataset file that cannot be used: names the file, the record and the field."""


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise DatasetError(f"Unknown dataset format {fmt!r}.", hint="Use --format counterfact or --format zsre.")
    return fmt


# -- records -----------------------------------------------------------------------------------------
def _prompt(text: str, target: str, subject: str = "") -> Prompt:
    # the datasets join prompt and answer with one space (ROME: f"{prefix} {suffix}", EasyEdit:
    # prompt + ' ' + target); the codec then tokenises the pair jointly
    return Prompt(text.rstrip(), " " + target.strip(), subject)


@dataclass(frozen=True)
class CounterFactRecord:
    case_id: int | str
    subject: str
    prompt: str                 # "{}" marks the subject
    target_new: str
    target_true: str
    relation_id: str = ""
    paraphrase_prompts: tuple[str, ...] = ()
    neighborhood_prompts: tuple[str, ...] = ()
    attribute_prompts: tuple[str, ...] = ()
    generation_prompts: tuple[str, ...] = ()
    target_new_id: str = ""
    target_true_id: str = ""

    @property
    def rewrite_prompt(self) -> str:
        return self.prompt.replace("{}", self.subject)

    def request(self) -> Request:
        return Request.of([_prompt(self.rewrite_prompt, self.target_new, self.subject)])

    def to_json(self) -> dict:
        def target(s, i):
            return {"str": s, **({"id": i} if i else {})}

        return {"case_id": self.case_id,
                "requested_rewrite": {"prompt": self.prompt,
                                      **({"relation_id": self.relation_id} if self.relation_id else {}),
                                      "target_new": target(self.target_new, self.target_new_id),
                                      "target_true": target(self.target_true, self.target_true_id),
                                      "subject": self.subject},
                "paraphrase_prompts": list(self.paraphrase_prompts),
                "neighborhood_prompts": list(self.neighborhood_prompts),
                "attribute_prompts": list(self.attribute_prompts),
                "generation_prompts": list(self.generation_prompts)}

    @classmethod
    def parse(cls, f: _Fields) -> CounterFactRecord:
        prompt = f.text("requested_rewrite.prompt")
        if prompt.count("{}") != 1:
            f.fail("requested_rewrite.prompt", 'must contain "{}" once, where the subject goes '
                                               f"(it is {prompt!r})")
        return cls(case_id=f.case_id if f.case_id is not None else f.index,
                   subject=f.text("requested_rewrite.subject"), prompt=prompt,
                   target_new=f.text("requested_rewrite.target_new.str"),
                   target_true=f.text("requested_rewrite.target_true.str"),
                   relation_id=f.text("requested_rewrite.relation_id", required=False) or "",
                   paraphrase_prompts=f.texts("paraphrase_prompts"),
                   neighborhood_prompts=f.texts("neighborhood_prompts"),
                   attribute_prompts=f.texts("attribute_prompts", required=False),
                   generation_prompts=f.texts("generation_prompts", required=False),
                   target_new_id=f.ident("requested_rewrite.target_new.id"),
                   target_true_id=f.ident("requested_rewrite.target_true.id"))


@dataclass(frozen=True)
class ZsreRecord:
    case_id: int                # the record's index in the file (zsRE records carry no id)
    subject: str
    src: str
    rephrase: str
    alt: str
    answers: tuple[str, ...]
    loc: str
    loc_ans: str
    cond: str | None = None
    pred: str | None = None

    def request(self) -> Request:
        return Request.of([_prompt(self.src, self.alt, self.subject)])

    def to_json(self) -> dict:
        out = {"subject": self.subject, "src": self.src, "rephrase": self.rephrase, "alt": self.alt,
               "answers": list(self.answers), "loc": self.loc, "loc_ans": self.loc_ans}
        out.update({k: v for k, v in (("cond", self.cond), ("pred", self.pred)) if v is not None})
        return out

    @classmethod
    def parse(cls, f: _Fields) -> ZsreRecord:
        answers = f.texts("answers")
        if not answers:
            f.fail("answers", "is an empty list (it holds the true answer first)")
        return cls(case_id=f.index, subject=f.text("subject"), src=f.text("src"), rephrase=f.text("rephrase"),
                   alt=f.text("alt"), answers=answers, loc=f.text("loc"), loc_ans=f.text("loc_ans"),
                   cond=f.text("cond", required=False), pred=f.text("pred", required=False))


_RECORDS = {"counterfact": CounterFactRecord, "zsre": ZsreRecord}


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "true/false", int: "a number",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


class _Fields:
    """Typed access to one raw record; every failure names the file, the record and the field."""

    def __init__(self, fmt: str, path: str, index: int, raw: Any):
        self.fmt, self.path, self.index, self.raw = fmt, path, index, raw
        cid = raw.get("case_id") if isinstance(raw, dict) else None
        self.case_id = cid
        if not isinstance(raw, dict):
            self.fail(None, f"must be a JSON object, not {_kind(raw)}")
        if cid is not None and (isinstance(cid, bool) or not isinstance(cid, (int, str))):
            self.case_id = None
            self.fail("case_id", f"must be a number or text, not {_kind(cid)}")

    def fail(self, field: str | None, what: str):
        where = f"record {self.index}" + (f" (case_id {self.case_id!r})" if self.case_id is not None else "")
        subject = f"field {field!r}" if field else "the record"
        raise DatasetError(f"{self.path}: {where}: {subject} {what}.", hint=HINTS[self.fmt],
                           details={"file": self.path, "record": self.index, "case_id": self.case_id,
                                    "field": field})

    def get(self, dotted: str, *, required: bool = True) -> Any:
        node, seen = self.raw, []
        for part in dotted.split("."):
            if not isinstance(node, dict):
                self.fail(".".join(seen), f"must be an object with {part!r} in it, not {_kind(node)}")
            seen.append(part)
            if node.get(part) is None and not required:
                return None
            if part not in node:
                self.fail(".".join(seen), "is missing")
            node = node[part]
        return node

    def text(self, dotted: str, *, required: bool = True) -> str | None:
        v = self.get(dotted, required=required)
        if v is None and not required:
            return None
        if not isinstance(v, str):
            self.fail(dotted, f"must be text, not {_kind(v)}")
        if not v.strip():
            self.fail(dotted, "is empty")
        return v

    def texts(self, dotted: str, *, required: bool = True) -> tuple[str, ...]:
        v = self.get(dotted, required=required)
        if v is None and not required:
            return ()
        if not isinstance(v, list):
            self.fail(dotted, f"must be a list of text, not {_kind(v)}")
        for k, x in enumerate(v):
            if not isinstance(x, str):
                self.fail(f"{dotted}[{k}]", f"must be text, not {_kind(x)}")
            if not x.strip():
                self.fail(f"{dotted}[{k}]", "is empty")
        return tuple(v)

    def ident(self, dotted: str) -> str:
        """An optional id (CounterFact's Wikidata ids), kept as text."""
        v = self.get(dotted, required=False)
        return "" if v is None else str(v)


# -- files -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    format: str
    path: str
    records: tuple


def detect(raw: list) -> str | None:
    first = raw[0] if raw and isinstance(raw[0], dict) else {}
    if "requested_rewrite" in first:
        return "counterfact"
    if "src" in first and "alt" in first:
        return "zsre"
    return None


def load(path: str | Path, fmt: str | None = None, *, limit: int | None = None) -> Dataset:
    """The records of a CounterFact or zsRE file (``fmt`` None: told by the first record), all
    checked; the first ``limit`` kept."""
    if fmt is not None:
        check_format(fmt)
    path = Path(path)
    name = str(path)
    hint = HINTS.get(fmt or "", "The file is CounterFact's counterfact.json or EasyEdit's zsre_mend_eval.json.")
    if not path.is_file():
        raise DatasetError(f"No dataset file {name}.", hint="Give the path of a CounterFact or zsRE JSON file; "
                           "`oneedit eval --write-dataset FILE --format ...` writes one from the KG.")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{name} is not UTF-8 text (byte {exc.start}).", hint=hint) from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{name} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
                           hint=hint) from None
    if not isinstance(raw, list):
        raise DatasetError(f"{name} must hold a JSON list of records, not {_kind(raw)}.", hint=hint)
    if not raw:
        raise DatasetError(f"{name} has no records.", hint=hint)
    fmt = fmt or detect(raw)
    if fmt is None:
        raise DatasetError(f"Cannot tell the format of {name} from its first record.",
                           hint="Pass --format counterfact or --format zsre.")
    if limit is not None and limit > len(raw):
        raise DatasetError(f"{name} has {len(raw)} records; {limit} edits were asked for.",
                           hint=f"Ask for at most {len(raw)} (--edits), or leave --edits out to use every record.")
    cls = _RECORDS[fmt]
    records = tuple(cls.parse(_Fields(fmt, name, i, r)) for i, r in enumerate(raw))
    return Dataset(fmt, name, records[:limit] if limit is not None else records)


def write(path: str | Path, records: Sequence) -> None:
    """``records`` as the format's JSON list (written whole or not at all)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps([r.to_json() for r in records], indent=2, ensure_ascii=False) + "\n",
                   encoding="utf-8")
    tmp.replace(path)


# -- metrics -----------------------------------------------------------------------------------------
def _macro(owners: Sequence[int], values: Sequence[float]) -> float | None:
    """Mean over a record's prompts, then over records (MEMIT's summarize)."""
    per: dict[int, list[float]] = {}
    for o, v in zip(owners, values, strict=True):
        per.setdefault(o, []).append(float(v))
    if not per:
        return None
    return round(sum(sum(v) / len(v) for v in per.values()) / len(per), 4)


def _hmean(xs: Sequence[float | None]) -> float | None:
    if any(x is None for x in xs):
        return None
    if any(x <= 0 for x in xs):
        return 0.0
    return round(len(xs) / sum(1 / x for x in xs), 4)


_CF_GROUPS = ("efficacy", "paraphrase", "neighborhood")


def measure_counterfact(model, codec, records: Sequence[CounterFactRecord], reference=None) -> tuple[dict, None]:
    probes: dict[str, list[tuple[int, Prompt]]] = {g: [] for g in _CF_GROUPS}
    for i, r in enumerate(records):
        probes["efficacy"].append((i, _prompt(r.rewrite_prompt, r.target_new, r.subject)))
        probes["paraphrase"] += [(i, _prompt(t, r.target_new, r.subject)) for t in r.paraphrase_prompts]
        probes["neighborhood"] += [(i, _prompt(t, r.target_true)) for t in r.neighborhood_prompts]
    out: dict[str, Any] = {}
    for group, items in probes.items():
        owners = [i for i, _ in items]
        prompts = [p for _, p in items]
        if not prompts:
            out.update({f"{group}_score": None, f"{group}_magnitude": None, f"{group}_exact_match": None})
            continue
        new = [" " + records[i].target_new.strip() for i in owners]
        true = [" " + records[i].target_true.strip() for i in owners]
        nll_new = target_nll(model, codec, prompts, targets=new)
        nll_true = target_nll(model, codec, prompts, targets=true)
        # the answer that should win: the new one on rewrite and paraphrase prompts, the true one
        # on the neighbourhood (prompts about other subjects whose answer is target_true)
        win, lose = (nll_true, nll_new) if group == "neighborhood" else (nll_new, nll_true)
        pairs = list(zip(win, lose, strict=True))
        out[f"{group}_score"] = _macro(owners, [w < lo for w, lo in pairs])
        out[f"{group}_magnitude"] = _macro(owners, [math.exp(-w) - math.exp(-lo) for w, lo in pairs])
        exact, _ = greedy(model, codec, prompts, targets=true if group == "neighborhood" else new)
        out[f"{group}_exact_match"] = _macro(owners, exact)
    out["score"] = _hmean([out[f"{g}_score"] for g in _CF_GROUPS])
    out["probes"] = {g: len(items) for g, items in probes.items()}
    return out, None


def measure_zsre(model, codec, records: Sequence[ZsreRecord], reference=None) -> tuple[dict, tuple]:
    """``reference``: the unedited model's locality tokens and greedy outputs (None: this is the
    unedited model; they are computed, returned, and locality is not scored)."""
    out: dict[str, Any] = {}
    for key, field in (("rewrite", "src"), ("rephrase", "rephrase")):
        prompts = [_prompt(getattr(r, field), r.alt, r.subject) for r in records]
        acc = teacher_forced(model, codec, prompts)
        exact, _ = greedy(model, codec, prompts)
        out[f"{key}_acc"] = round(sum(acc) / len(acc), 4)
        out[f"{key}_exact_match"] = round(sum(exact) / len(exact), 4)
    loc = [_prompt(r.loc, r.loc_ans) for r in records]
    tokens = target_predictions(model, codec, loc)
    _, said = greedy(model, codec, loc)
    if reference is None:
        out["locality_acc"] = out["locality_exact_match"] = None
    else:
        ref_tokens, ref_said = reference
        agree = [sum(a == b for a, b in zip(x, y, strict=True)) / len(y)
                 for x, y in zip(tokens, ref_tokens, strict=True)]
        out["locality_acc"] = round(sum(agree) / len(agree), 4)
        out["locality_exact_match"] = round(sum(a == b for a, b in zip(said, ref_said, strict=True)) / len(said), 4)
    out["probes"] = {"rewrite": len(records), "rephrase": len(records), "locality": len(records)}
    return out, (tokens, said)


_MEASURE = {"counterfact": measure_counterfact, "zsre": measure_zsre}


def check_subjects(dataset: Dataset) -> None:
    """Keys at the subject's last token need the subject in every edit prompt."""
    for i, r in enumerate(dataset.records):
        if isinstance(r, ZsreRecord) and r.subject not in r.src:
            raise DatasetError(f"{dataset.path}: record {i}: field 'src' does not contain the subject "
                               f"{r.subject!r} ({r.src!r}).",
                               hint="This model's MEMIT keys sit at the subject's last token, so the edit "
                                    "prompt must name the subject as written; fix the record, drop it, or "
                                    "edit with --method grace.",
                               details={"file": dataset.path, "record": i, "field": "src"})


def evaluate(editable, dataset: Dataset, *, method: str, batch_size: int | None = None,
             progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Score the model on ``dataset`` before, edit every record (batches of ``batch_size``,
    default all at once), score after. ``editable`` is changed: give it an in-memory copy."""
    if method == "memit" and editable.hp.memit.key_position == "subject_last":
        check_subjects(dataset)
    model, codec = editable.model, editable.codec
    measure = _MEASURE[dataset.format]
    records = dataset.records
    before, reference = measure(model, codec, records)
    n = len(records)
    bs = batch_size or n
    seconds = 0.0
    unconverged: list = []
    for b, start in enumerate(range(0, n, bs)):
        chunk = records[start: start + bs]
        t0 = time.perf_counter()
        editable.edit(f"eval-{b + 1}", [r.request() for r in chunk], method)
        seconds += time.perf_counter() - t0
        # GRACE names the requests whose value did not reach its stop loss (``<edit>#<request>``)
        for sub in editable.manifest[-1]["stats"].get("unconverged_ids", []):
            unconverged.append(chunk[int(sub.rsplit("#", 1)[1])].case_id)
        if progress:
            progress("edits", start + len(chunk), n)
    after, _ = measure(model, codec, records, reference)
    probes = after.pop("probes")
    before.pop("probes")
    return {"format": dataset.format, "dataset": dataset.path, "method": method, "edits": n, "batch_size": bs,
            "edit_seconds": round(seconds, 3), "edits_per_second": round(n / seconds, 3) if seconds else None,
            "metrics": [k for k, _ in METRICS[dataset.format]], "before": before, "after": after,
            "probes": probes, "unconverged_cases": unconverged}
