"""Facts in words: the prompts an editor writes and the probes an evaluation reads.

The editor never sees the KG or its schema objects; the caller hands it plain data — facts with
their labels, and per relation the ``train`` and ``heldout`` templates (``{subject}``/``{object}``
placeholders). A template is usable as a *prompt* when its text ends with ``{object}``: the text
before the placeholder is the prompt and the object's label is the target the model must produce.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "heldout"]


@dataclass(frozen=True, slots=True)
class Fact:
    """A fact as the model sees it: labels, plus the KG ids it came from."""

    subject: str
    relation: str
    object: str
    subject_id: str = ""
    object_id: str = ""

    def with_object(self, label: str, object_id: str = "") -> Fact:
        return Fact(self.subject, self.relation, label, self.subject_id, object_id)


@dataclass(frozen=True, slots=True)
class Prompt:
    """``text`` + ``target`` is a sentence; the model is asked to continue ``text`` with ``target``.

    ``subject`` is the subject's surface form inside ``text`` (MEMIT's ``subject_last`` keys are
    read at its last token). ``target`` starts with a space, as the word would in running text.
    """

    text: str
    target: str
    subject: str
    relation: str = ""
    template: str = ""

    @property
    def sentence(self) -> str:
        return self.text + self.target


class Verbalizer:
    def __init__(self, templates: Mapping[str, Mapping[str, Sequence[str]]]):
        self.templates = {rel: {split: tuple(ts) for split, ts in spec.items()}
                          for rel, spec in templates.items()}

    def prompt_templates(self, relation: str, split: Split) -> tuple[str, ...]:
        ts = self.templates.get(relation, {}).get(split, ())
        return tuple(t for t in ts if t.endswith("{object}") and t.count("{object}") == 1)

    def prompts(self, fact: Fact, split: Split = "train") -> list[Prompt]:
        return [render(t, fact) for t in self.prompt_templates(fact.relation, split)]

    def prompt(self, fact: Fact, split: Split = "train", index: int = 0) -> Prompt:
        ts = self.prompt_templates(fact.relation, split)
        if not ts:
            raise KeyError(f"relation {fact.relation!r} has no {split} prompt template")
        return render(ts[index % len(ts)], fact)

    def corpus(self, facts: Iterable[Fact], split: Split = "train") -> list[str]:
        """Every sentence the templates make of ``facts`` (object-first forms included)."""
        out = []
        for f in facts:
            for t in self.templates.get(f.relation, {}).get(split, ()):
                out.append(t.replace("{subject}", f.subject).replace("{object}", f.object))
        return out


def render(template: str, fact: Fact) -> Prompt:
    head = template[: template.rindex("{object}")]
    text = head.replace("{subject}", fact.subject).rstrip()
    return Prompt(text=text, target=" " + fact.object, subject=fact.subject,
                  relation=fact.relation, template=template)
