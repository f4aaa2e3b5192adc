"""Question answering: the KG's answer and the model's, side by side.

A question is read by the Interpreter as a ``query`` intent; the KG answers it exactly (functional,
many-valued, inverse and composite relations, yes/no), and the model is asked the same thing as a
prompt, so a user sees at once whether they agree.
"""

from __future__ import annotations

from oneedit.core import EditIntent, InputError, Triple


class Questions:
    def __init__(self, system):
        self.sys = system

    def parse(self, text: str, focus: tuple[str, str] | None = None) -> list[EditIntent]:
        """The questions in ``text`` (an error when there are none); ``focus`` as for
        :meth:`OneEdit.parse` ("and Chile's?" after a question about Peru's capital)."""
        parsed = self.sys.parse(text, focus)
        queries = [i for i in parsed.intents if i.op == "query"]
        if not queries:
            raise InputError(f"{text!r} is not a question I can answer.",
                             hint='Ask e.g. "What is the capital of France?" or "Who is the CEO of Apple?".',
                             details={"parse": parsed.to_dict()})
        return queries

    def answer(self, q: EditIntent) -> dict:
        from editor.verbalize import Fact
        from oneedit.knowledge import Labeller, holds, verbalizer

        kg = self.sys.kg
        label = Labeller(kg)
        schema = kg.schema
        spec = schema.relations.get(q.relation or "")
        out: dict = {"question": q.text, "relation": q.relation}
        if spec is None:
            return out | {"kg": [], "model": None, "agree": None, "note": "no relation recognised"}
        for role in ("subject", "object"):
            m = getattr(q, role)
            if m is not None and m.entity is None:
                out |= {"kg": [], "model": None, "agree": None,
                        "note": f"{m.text!r} is not in the KG" + (" (ambiguous)" if m.candidates else "")}
                return out
        s, o = q.subject.id if q.subject else None, q.object.id if q.object else None
        if s and o:  # yes/no
            out |= {"kind": "yes_no", "subject": label(s), "object": label(o),
                    "kg": holds(kg, Triple(s, spec.id, o))}
            prompt_rel, subj, expect = spec.id, s, label(o)
        elif s:
            kg_ids = ([d.triple.object for d in kg.derived(spec.id, subject=s)] if spec.composite
                      else kg.store.objects(s, spec.id))
            out |= {"kind": "value", "subject": label(s), "kg": [label(x) for x in sorted(kg_ids)]}
            prompt_rel, subj, expect = spec.id, s, None
        else:
            mirror = schema.mirror(spec.id)
            kg_ids = kg.store.subjects(spec.id, o)
            out |= {"kind": "value", "object": label(o), "kg": [label(x) for x in sorted(kg_ids)]}
            prompt_rel, subj, expect = mirror, o, None
        em = self.sys.model if prompt_rel and schema.relations[prompt_rel].functional else None
        if em is None:
            out |= {"model": None, "agree": None}
            if prompt_rel and not schema.relations[prompt_rel].functional:
                out["note"] = f"the model learns one-answer relations only; {prompt_rel} has several"
            return out
        try:
            prompt = verbalizer(schema).prompt(Fact(label(subj), prompt_rel, "", subj, ""), "train")
        except KeyError:
            return out | {"model": None, "agree": None}
        said = self.sys.sync.answers([("train", prompt, None)])[0]
        out["model_prompt"] = prompt.text
        out["model"] = said
        norm = said.casefold()
        if out.get("kind") == "yes_no":
            out["model_says_yes"] = norm.startswith(expect.casefold())
            out["agree"] = out["model_says_yes"] == out["kg"]
        else:
            out["agree"] = any(norm.startswith(k.casefold()) for k in out["kg"]) if out["kg"] else False
        return out
